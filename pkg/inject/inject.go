// Package inject applies the webhook's mutation to manifests offline, like
// istioctl kube-inject: every pod and pod template in a YAML stream gets
// exactly what the webhook would inject, through the same pkg/mutate code.
package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// Options configures an injection run.
type Options struct {
	// Config bounds what pods may ask for, as the webhook's flags do.
	Config mutate.Config
	// EmitRBAC writes the ServiceAccount, Role and RoleBinding of every
	// account the manifests ensure, ahead of the manifests.
	EmitRBAC bool
	// Namespace is used for objects that name none (like kubectl apply -n).
	Namespace string
}

// templatePaths are where each kind keeps its pod template: the pod itself
// for a Pod. Kinds not listed pass through unchanged.
var templatePaths = map[string][]string{
	"v1/Pod":              {},
	"apps/v1/Deployment":  {"spec", "template"},
	"apps/v1/StatefulSet": {"spec", "template"},
	"apps/v1/DaemonSet":   {"spec", "template"},
	"apps/v1/ReplicaSet":  {"spec", "template"},
	"batch/v1/Job":        {"spec", "template"},
	"batch/v1/CronJob":    {"spec", "jobTemplate", "spec", "template"},
}

// identity is one ServiceAccount to emit RBAC for.
type identity struct{ namespace, serviceAccount string }

// Run reads the YAML stream in, named name in errors, and writes the result
// to out. It writes nothing if any document is refused.
func Run(in io.Reader, name string, out io.Writer, opts Options) error {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var docs [][]byte
	var ids []identity
	for index := 1; ; index++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", name, index, err)
		}
		if isEmpty(raw) {
			index--
			continue
		}
		doc, found, err := injectDocument(raw, opts)
		if err != nil {
			return fmt.Errorf("%s: document %d %w", name, index, err)
		}
		docs = append(docs, doc)
		ids = appendNew(ids, found...)
	}
	var buf bytes.Buffer
	if opts.EmitRBAC {
		for _, id := range ids {
			if id.namespace == "" {
				return fmt.Errorf("%s: ServiceAccount %s: --emit-rbac needs a namespace: set metadata.namespace or --namespace", name, id.serviceAccount)
			}
			for _, obj := range []any{rbac.ServiceAccount(id.namespace, id.serviceAccount), rbac.Role(id.namespace, id.serviceAccount), rbac.RoleBinding(id.namespace, id.serviceAccount)} {
				b, err := yaml.Marshal(obj)
				if err != nil {
					return err
				}
				writeDoc(&buf, b)
			}
		}
	}
	for _, d := range docs {
		writeDoc(&buf, d)
	}
	_, err := out.Write(buf.Bytes())
	return err
}

// injectDocument mutates every pod template of one document. It returns the
// document (the original bytes if nothing changed, so comments survive) and
// the identities its pods run as.
func injectDocument(raw []byte, opts Options) ([]byte, []identity, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, nil, fmt.Errorf("(not valid YAML): %w", err)
	}
	changed, ids, err := injectObject(obj, opts.Namespace, opts)
	if err != nil || !changed {
		return raw, ids, err
	}
	b, err := yaml.Marshal(obj)
	return b, ids, err
}

func injectObject(obj map[string]any, namespace string, opts Options) (bool, []identity, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" {
		namespace = ns
	}
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		changed := false
		var ids []identity
		for i, it := range items {
			item, ok := it.(map[string]any)
			if !ok {
				continue
			}
			c, found, err := injectObject(item, namespace, opts)
			if err != nil {
				return false, nil, fmt.Errorf("item %d %w", i, err)
			}
			changed = changed || c
			ids = append(ids, found...)
		}
		return changed, ids, nil
	}
	path, ok := templatePaths[apiVersion+"/"+kind]
	if !ok {
		return false, nil, nil
	}
	tmpl, ok := lookup(obj, path)
	if !ok {
		return false, nil, nil
	}
	changed, sa, err := injectTemplate(tmpl, opts.Config)
	if err != nil {
		return false, nil, fmt.Errorf("(%s %s): %w", kind, name, err)
	}
	var ids []identity
	if sa != "" {
		ids = append(ids, identity{namespace: namespace, serviceAccount: sa})
	}
	return changed, ids, nil
}

// injectTemplate applies the mutation to a pod or pod template in place,
// through the same add-only JSON Patch the webhook answers with, so fields
// this version does not know are kept.
func injectTemplate(tmpl map[string]any, cfg mutate.Config) (bool, string, error) {
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return false, "", err
	}
	// Case-sensitive, as kube-apiserver decodes: a "Spec" key is not spec.
	var pod corev1.Pod
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &pod); err != nil {
		return false, "", err
	}
	if !mutate.Triggered(pod.Annotations) || pod.Labels[mutate.LabelInject] == mutate.InjectDisabled {
		return false, "", nil
	}
	res, err := mutate.Mutate(&pod, cfg)
	if err != nil {
		return false, "", err
	}
	if err := res.RecordExpiration(&pod); err != nil {
		return false, "", err
	}
	if res.Changes.Empty() {
		return false, res.Spec.ServiceAccount, nil
	}
	ops, err := json.Marshal(res.Changes.JSONPatch(&pod))
	if err != nil {
		return false, "", err
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return false, "", err
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		return false, "", err
	}
	for k := range tmpl {
		delete(tmpl, k)
	}
	if err := json.Unmarshal(patched, &tmpl); err != nil {
		return false, "", err
	}
	return true, res.Spec.ServiceAccount, nil
}

func lookup(obj map[string]any, path []string) (map[string]any, bool) {
	cur := obj
	for _, k := range path {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

func appendNew(ids []identity, more ...identity) []identity {
	for _, id := range more {
		seen := false
		for _, have := range ids {
			seen = seen || have == id
		}
		if !seen {
			ids = append(ids, id)
		}
	}
	return ids
}

// isEmpty reports a document holding only blank lines and comments.
func isEmpty(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return false
		}
	}
	return true
}

func writeDoc(buf *bytes.Buffer, doc []byte) {
	if buf.Len() > 0 {
		buf.WriteString("---\n")
	}
	buf.Write(bytes.TrimLeft(doc, "\n"))
	if !bytes.HasSuffix(doc, []byte("\n")) {
		buf.WriteByte('\n')
	}
}
