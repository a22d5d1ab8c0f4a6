// Package render produces the install manifests the way users do: the Helm
// chart through the pinned helm binary (`helm template`), and config/
// through kustomize's own Go API. test/install checks what they render and
// test/e2e installs it.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/token-projector/token-projector/test/testenv"
)

const (
	// ChartDir is the chart, relative to the repository root.
	ChartDir = "charts/token-projector"
	// Release is the documented release name: `helm install token-projector`
	// gives the object names config/ uses.
	Release = "token-projector"
	// Namespace is the documented install namespace, the one config/ uses.
	Namespace = "token-projector-system"
)

var (
	helmOnce sync.Once
	helmPath string
	errHelm  error
)

// Helm is the pinned helm binary: $HELM (set by `make test`), else what
// `make helm` installs, so that `go test` alone works on a fresh machine.
func Helm(root string) (string, error) {
	helmOnce.Do(func() {
		if p := os.Getenv("HELM"); p != "" {
			helmPath = p
			return
		}
		cmd := exec.Command("make", "--no-print-directory", "-s", "-C", root, "helm-path")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			errHelm = fmt.Errorf("installing helm with `make helm-path`: %w", err)
			return
		}
		helmPath = strings.TrimSpace(string(out))
	})
	return helmPath, errHelm
}

// RunHelm runs the pinned helm with args from the repository root and returns
// its standard output, or an error that carries its standard error.
func RunHelm(root string, args ...string) ([]byte, error) {
	helm, err := Helm(root)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(helm, args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// Chart renders the chart as release Release in namespace ns with extra
// `helm template` arguments (--set, -f) and returns its objects.
func Chart(root, ns string, args ...string) ([]*unstructured.Unstructured, error) {
	return ChartRelease(root, Release, ns, args...)
}

// ChartRelease renders the chart as release in namespace ns.
func ChartRelease(root, release, ns string, args ...string) ([]*unstructured.Unstructured, error) {
	out, err := RunHelm(root, append([]string{"template", release, ChartDir, "--namespace", ns}, args...)...)
	if err != nil {
		return nil, err
	}
	return Decode(out)
}

// Kustomize builds a kustomization directory (relative to root) with
// kustomize's API, as `kubectl apply -k` does.
func Kustomize(root, dir string) ([]*unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, err
	}
	return Decode(out)
}

// Decode splits a multi-document YAML stream into objects, skipping empty
// documents.
func Decode(b []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// Key names an object uniquely: kind, namespace and name.
func Key(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
}

// Keys lists the objects' keys, sorted.
func Keys(objs []*unstructured.Unstructured) []string {
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, Key(o))
	}
	sort.Strings(keys)
	return keys
}

// Find returns the one object of that kind and name, or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// OfKind returns the objects of one kind.
func OfKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// Into converts a rendered built-in object into its typed form, rejecting
// fields the type does not have (a misspelt field would otherwise vanish).
func Into(o *unstructured.Unstructured, typed runtime.Object) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, typed, true); err != nil {
		return fmt.Errorf("%s: %w", Key(o), err)
	}
	return nil
}

// Typed converts every built-in object into its typed form (see Into), and
// leaves custom resources unstructured.
func Typed(objs []*unstructured.Unstructured) ([]runtime.Object, error) {
	out := make([]runtime.Object, 0, len(objs))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if !clientgoscheme.Scheme.Recognizes(gvk) {
			out = append(out, o)
			continue
		}
		typed, err := clientgoscheme.Scheme.New(gvk)
		if err != nil {
			return nil, err
		}
		if err := Into(o, typed); err != nil {
			return nil, err
		}
		out = append(out, typed)
	}
	return out, nil
}

// CertManagerCRDs is deploy/crds of the cert-manager module that go.mod
// requires (downloaded if needed): the CRDs of the cert-manager version the
// end-to-end tests run.
func CertManagerCRDs(root string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/cert-manager/cert-manager")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("downloading the cert-manager module: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	dir := filepath.Join(mod.Dir, "deploy", "crds")
	if _, err := os.Stat(filepath.Join(dir, "cert-manager.io_certificates.yaml")); err != nil {
		return "", fmt.Errorf("cert-manager CRDs: %w", err)
	}
	return dir, nil
}

// ChartSuite prepares a testenv.Suite that installs only what a test renders:
// no RBAC and no webhook configuration of config/, cert-manager's CRDs
// installed. It sets *root to the repository root.
func ChartSuite(root *string) func(*testenv.Options) error {
	return func(o *testenv.Options) error {
		var err error
		if *root, err = testenv.RepoRoot(); err != nil {
			return err
		}
		crds, err := CertManagerCRDs(*root)
		if err != nil {
			return err
		}
		o.SkipRBAC, o.SkipWebhookConfiguration = true, true
		o.CRDDirectoryPaths = append(o.CRDDirectoryPaths, crds)
		return nil
	}
}
