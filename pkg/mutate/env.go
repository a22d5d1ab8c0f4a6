package mutate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// Limits of the token-file-env annotation: far above what a pod needs (one
// variable per cloud SDK), low enough that a denial and the status
// annotation stay small.
const (
	// MaxTokenFileEnvs bounds the number of <audience>=<VARIABLE> entries.
	MaxTokenFileEnvs = 16
	// MaxTokenFileEnvLength bounds the annotation's value, in bytes.
	MaxTokenFileEnvLength = 4096
)

// tokenFileEnvSyntax is what the annotation's value must look like.
const tokenFileEnvSyntax = "comma-separated <audience>=<VARIABLE> entries, such as vault=VAULT_TOKEN_FILE,sts.amazonaws.com=AWS_WEB_IDENTITY_TOKEN_FILE"

// TokenFileVar is one environment variable token-file-env asks for: set to
// the path of one audience's token file.
type TokenFileVar struct {
	// Name is the variable's name, a C identifier.
	Name string
	// Audience is the requested audience whose token file it names.
	Audience string
	// Path is that token file's path, <mount path>/<file name>: exactly
	// where the projected volume puts it.
	Path string
}

// entry is the variable as the annotation spells it, for denials.
func (v *TokenFileVar) entry() string { return v.Audience + "=" + v.Name }

// Value is what the variable's env entry holds: Path with every '$'
// written "$$". The kubelet expands $(NAME) references in env values
// (k8s.io/kubernetes third_party/forked/golang/expansion), and "$$" is the
// one sequence it turns into a lone '$' whatever follows, so the container
// sees Path itself even for a mount path holding "$(".
func (v *TokenFileVar) Value() string { return escapeExpansion(v.Path) }

// escapeExpansion writes s so that the kubelet's env expansion gives s back.
func escapeExpansion(s string) string { return strings.ReplaceAll(s, "$", "$$") }

// Env is one environment variable to put before one container's own env
// entries.
type Env struct {
	Container ContainerRef
	Var       corev1.EnvVar
}

// parseTokenFileEnv reads token-file-env: comma-separated
// <audience>=<VARIABLE> entries, spaces around entries and around the '='
// ignored. An entry is split at its last '=', since an audience may hold
// one (a URL with a query) and a variable name may not. Every audience must
// be one of auds, exactly as requested; a variable is named once, an
// audience may be given to several variables.
func parseTokenFileEnv(annotations map[string]string, auds []Audience, mountPath string) ([]TokenFileVar, error) {
	const field = AnnotationTokenFileEnv
	raw, ok := annotations[field]
	if !ok {
		return nil, nil
	}
	if len(raw) > MaxTokenFileEnvLength {
		return nil, invalid(field, raw, "%s, of at most %d characters", tokenFileEnvSyntax, MaxTokenFileEnvLength)
	}
	entries := strings.Split(raw, ",")
	if len(entries) > MaxTokenFileEnvs {
		return nil, invalid(field, raw, "at most %d comma-separated <audience>=<VARIABLE> entries, got %d", MaxTokenFileEnvs, len(entries))
	}
	vars := make([]TokenFileVar, 0, len(entries))
	for _, e := range entries {
		entry := strings.TrimSpace(e)
		if entry == "" {
			return nil, invalid(field, raw, "%s, none of them empty", tokenFileEnvSyntax)
		}
		i := strings.LastIndexByte(entry, '=')
		if i < 0 {
			return nil, invalid(field, entry, "an <audience>=<VARIABLE> entry, such as vault=VAULT_TOKEN_FILE")
		}
		audience, name := strings.TrimSpace(entry[:i]), strings.TrimSpace(entry[i+1:])
		switch {
		case audience == "" || name == "":
			return nil, invalid(field, entry, "an <audience>=<VARIABLE> entry with both parts, such as vault=VAULT_TOKEN_FILE")
		case !cIdentifier(name):
			return nil, invalid(field, entry, "a variable name that is a C identifier ([A-Za-z_][A-Za-z0-9_]*: letters, digits and '_', not starting with a digit), such as VAULT_TOKEN_FILE")
		}
		aud := findAudience(auds, audience)
		if aud == nil {
			return nil, invalid(field, entry, "an audience this pod requests in %s, exactly as written there (%s)", AnnotationAudience, audienceList(auds))
		}
		for _, v := range vars {
			if v.Name == name {
				return nil, invalid(field, raw, "each variable once; %s is named twice", name)
			}
		}
		vars = append(vars, TokenFileVar{Name: name, Audience: audience, Path: mountPath + "/" + aud.File})
	}
	return vars, nil
}

// cIdentifier reports whether s is [A-Za-z_][A-Za-z0-9_]*: the names every
// shell and SDK reads, all of them valid in any Kubernetes version.
func cIdentifier(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

func findAudience(auds []Audience, name string) *Audience {
	for i := range auds {
		if auds[i].Name == name {
			return &auds[i]
		}
	}
	return nil
}

// audienceList names the requested audiences for a denial, bounded as
// quote bounds a value: 16 long audiences would make a page.
func audienceList(auds []Audience) string {
	var b strings.Builder
	for i, a := range auds {
		if i > 0 {
			b.WriteString(", ")
		}
		if b.Len() > 2*maxQuoted {
			fmt.Fprintf(&b, "and %d more", len(auds)-i)
			break
		}
		b.WriteString(quote(a.Name))
	}
	return b.String()
}

// planTokenFileEnv works out the variables to add to the containers of refs.
// A container that already sets one of them to its path keeps it; one that
// sets it to anything else, or from valueFrom, is refused: the variable is
// the author's, and we never overwrite it. A variable coming from envFrom
// cannot be seen here; env takes precedence over it, as the author asked.
func planTokenFileEnv(spec *Spec, pod *corev1.Pod, refs []ContainerRef) ([]Env, error) {
	if len(spec.TokenFileEnv) == 0 {
		return nil, nil
	}
	var adds []Env
	for _, ref := range refs {
		ctr := container(pod, ref)
		for i := range spec.TokenFileEnv {
			v := &spec.TokenFileEnv[i]
			add, err := planVar(ctr, ref.Init, v)
			if err != nil {
				return nil, err
			}
			if add {
				adds = append(adds, Env{Container: ref, Var: corev1.EnvVar{Name: v.Name, Value: v.Value()}})
			}
		}
	}
	return adds, nil
}

// planVar reports whether v must be added to ctr, or why it may not be.
func planVar(ctr *corev1.Container, init bool, v *TokenFileVar) (bool, error) {
	add := true
	for _, e := range ctr.Env {
		if e.Name != v.Name {
			continue
		}
		if e.ValueFrom == nil && e.Value == v.Value() {
			add = false // ours already, or the author's with our value
			continue
		}
		kind := "container"
		if init {
			kind = "init container"
		}
		has := "to " + quote(e.Value)
		if e.ValueFrom != nil {
			has = "from valueFrom" + sourceKind(e.ValueFrom)
		}
		return false, invalid(AnnotationTokenFileEnv, v.entry(),
			"%s %s already sets %s %s (this annotation would set it to %s); remove it from the container or name another variable",
			kind, quote(ctr.Name), v.Name, has, quote(v.Value()))
	}
	return add, nil
}

// sourceKind names the source a valueFrom uses, as ".secretKeyRef", or ""
// for one this API version does not know.
func sourceKind(s *corev1.EnvVarSource) string {
	switch {
	case s.FieldRef != nil:
		return ".fieldRef"
	case s.ResourceFieldRef != nil:
		return ".resourceFieldRef"
	case s.ConfigMapKeyRef != nil:
		return ".configMapKeyRef"
	case s.SecretKeyRef != nil:
		return ".secretKeyRef"
	case s.FileKeyRef != nil:
		return ".fileKeyRef"
	}
	return ""
}

// applyEnv puts the variables before their containers' own env entries, in
// order: the kubelet expands an entry's $(NAME) references only to entries
// above it, so the container's own entries can then use $(VAULT_TOKEN_FILE).
func applyEnv(pod *corev1.Pod, adds []Env) {
	added := map[ContainerRef]int{}
	for _, e := range adds {
		ctr := container(pod, e.Container)
		ctr.Env = slices.Insert(ctr.Env, added[e.Container], e.Var)
		added[e.Container]++
	}
}

// envOps are the operations that make applyEnv's change: the k-th variable
// of a container is added at index k of its env, before the entries it had;
// the first one for a container without env adds the whole array (absent or
// null, the raw JSON has no array to insert into), the others insert after
// it.
func envOps(pod *corev1.Pod, adds []Env) []jsonpatch.JsonPatchOperation {
	if len(adds) == 0 {
		return nil
	}
	ops := make([]jsonpatch.JsonPatchOperation, 0, len(adds))
	added := map[ContainerRef]int{}
	for _, e := range adds {
		base := containerPath(e.Container, "/env")
		k := added[e.Container]
		if k == 0 && len(container(pod, e.Container).Env) == 0 {
			ops = append(ops, jsonpatch.NewOperation("add", base, []any{e.Var}))
		} else {
			ops = append(ops, jsonpatch.NewOperation("add", base+"/"+strconv.Itoa(k), e.Var))
		}
		added[e.Container]++
	}
	return ops
}

// containerPath is the JSON Pointer of a container, followed by rest (one
// string built, not one per part).
func containerPath(ref ContainerRef, rest string) string {
	if ref.Init {
		return "/spec/initContainers/" + strconv.Itoa(ref.Index) + rest
	}
	return "/spec/containers/" + strconv.Itoa(ref.Index) + rest
}

// tokenFileEnvStatus is what the status annotation records of the
// variables: each one's audience, nil when there are none.
func (s *Spec) tokenFileEnvStatus() map[string]string {
	if len(s.TokenFileEnv) == 0 {
		return nil
	}
	m := make(map[string]string, len(s.TokenFileEnv))
	for _, v := range s.TokenFileEnv {
		m[v.Name] = v.Audience
	}
	return m
}
