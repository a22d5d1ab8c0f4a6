package mutate

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
)

// kubeletExpand is the kubelet's expansion of $(NAME) references in env
// values, copied from k8s.io/kubernetes v1.37.1
// third_party/forked/golang/expansion/expand.go (Expand and
// tryReadVariableName, with MappingFuncFor's rule: an unknown name is left
// as written). The main module does not depend on k8s.io/kubernetes; the
// cluster tier (test/cluster) checks the real kubelet.
func kubeletExpand(input string, vars map[string]string) string {
	mapping := func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
	var buf bytes.Buffer
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] == '$' && cursor+1 < len(input) {
			buf.WriteString(input[checkpoint:cursor])
			read, isVar, advance := tryReadVariableName(input[cursor+1:])
			if isVar {
				buf.WriteString(mapping(read))
			} else {
				buf.WriteString(read)
			}
			cursor += advance
			checkpoint = cursor + 1
		}
	}
	return buf.String() + input[checkpoint:]
}

func tryReadVariableName(input string) (string, bool, int) {
	r, size := utf8.DecodeRuneInString(input)
	switch r {
	case '$':
		return input[0:size], false, size
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1
	default:
		return "$" + string(r), false, size
	}
}

// containerEnv is a container's environment as the kubelet builds it from
// env: in order, each value expanded against the entries above it and the
// service variables the kubelet defines (KUBERNETES_SERVICE_HOST in every
// pod that has them).
func containerEnv(ctr *corev1.Container) map[string]string {
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			env[e.Name] = kubeletExpand(e.Value, env)
		}
	}
	return env
}

// TestEscapeSurvivesExpansion: every string, escaped, is what the kubelet
// expands it back to, whatever variables are defined; every string over
// "$()a/" up to 6 bytes, and a few longer ones, is tried.
func TestEscapeSurvivesExpansion(t *testing.T) {
	vars := map[string]string{"a": "EXPANDED", "": "EMPTY", "HOME": "/home"}
	check := func(s string) {
		if got := kubeletExpand(escapeExpansion(s), vars); got != s {
			t.Fatalf("%q escaped as %q expands to %q", s, escapeExpansion(s), got)
		}
	}
	const alphabet = "$()a/"
	strs := []string{""}
	for n := 1; n <= 6; n++ {
		var next []string
		for _, s := range strs {
			for _, c := range alphabet {
				next = append(next, s+string(c))
			}
		}
		for _, s := range next {
			check(s)
		}
		strs = next
	}
	for _, s := range []string{"/run/$(HOME)/tokens$", "/x/$$(a)/$", "/é$(a)ü/$(", "/$(a$(a))"} {
		check(s)
	}
	// The escape is needed: unescaped, these would name another file.
	if got := kubeletExpand("/run/$(HOME)/t", vars); got == "/run/$(HOME)/t" {
		t.Fatalf("the copy of the kubelet's expansion expands nothing: %q", got)
	}
}

// TestGoldenTokenFileEnvAsTheKubeletSeesIt holds the mutation of every
// admitted token-file-env golden case to what the container gets: each token-file variable, expanded by the
// kubelet, is the path of its audience's token file under the container's
// mount, and an entry of the container's own that references one as
// $(NAME) gets that path too.
func TestGoldenTokenFileEnvAsTheKubeletSeesIt(t *testing.T) {
	ins, _ := filepath.Glob("testdata/env-*/in.yaml")
	admitted := 0
	for _, in := range ins {
		pod := readPod(t, in)
		res, err := Mutate(pod, DefaultConfig())
		if err != nil {
			continue
		}
		admitted++
		res.Changes.Apply(pod)
		var st Status
		if err := json.Unmarshal([]byte(pod.Annotations[AnnotationStatus]), &st); err != nil {
			t.Fatalf("%s: status: %v", in, err)
		}
		files := map[string]string{}
		for _, src := range findVolume(pod.Spec.Volumes, VolumeName).Projected.Sources {
			files[src.ServiceAccountToken.Audience] = src.ServiceAccountToken.Path
		}
		ctrs := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
		for i := range ctrs {
			ctr := &ctrs[i]
			mount := ""
			for _, m := range ctr.VolumeMounts {
				if m.Name == VolumeName {
					mount = m.MountPath
				}
			}
			if mount == "" {
				continue
			}
			env := containerEnv(ctr)
			for name, aud := range st.TokenFileEnv {
				if want := mount + "/" + files[aud]; env[name] != want {
					t.Errorf("%s: container %s: %s expands to %q, want the token file %q", in, ctr.Name, name, env[name], want)
				}
			}
			for _, e := range ctr.Env {
				ref, ok := strings.CutPrefix(e.Value, "$(")
				if aud, tokenVar := st.TokenFileEnv[strings.TrimSuffix(ref, ")")]; ok && tokenVar {
					if want := mount + "/" + files[aud]; env[e.Name] != want {
						t.Errorf("%s: container %s: %s=%s expands to %q, want %q", in, ctr.Name, e.Name, e.Value, env[e.Name], want)
					}
				}
			}
		}
	}
	if admitted < 7 {
		t.Fatalf("only %d token-file-env golden cases admitted", admitted)
	}
}
