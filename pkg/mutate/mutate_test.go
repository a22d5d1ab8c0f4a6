package mutate

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden out.yaml, warnings.txt and error.txt files from the current code")

// TestGolden runs every testdata/<case>: in.yaml is a pod as kube-apiserver
// hands it to the webhook; out.yaml is the pod after mutation (with
// warnings.txt, one warning a line), or error.txt is the denial.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/in.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	for _, in := range dirs {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			pod := readPod(t, in)
			res, err := Mutate(pod, DefaultConfig())
			if err != nil {
				if !IsInvalid(err) {
					t.Fatalf("error is not a policy violation: %v", err)
				}
				golden(t, filepath.Join(dir, "error.txt"), err.Error()+"\n")
				return
			}
			res.Changes.Apply(pod)
			goldenPod(t, filepath.Join(dir, "out.yaml"), pod)
			golden(t, filepath.Join(dir, "warnings.txt"), strings.Join(append(res.Warnings, ""), "\n"))

			// Idempotency: the webhook running on its own output changes nothing.
			again, err := Mutate(pod, DefaultConfig())
			if err != nil {
				t.Fatalf("second pass denied its own output: %v", err)
			}
			if !again.Changes.Empty() {
				t.Errorf("second pass wants changes: %+v", again.Changes)
			}
		})
	}
}

func readPod(t *testing.T, file string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &pod
}

// goldenPod compares the mutated pod with out.yaml as objects, so the files
// may be formatted and commented freely; -update rewrites them.
func goldenPod(t *testing.T, file string, got *corev1.Pod) {
	t.Helper()
	if *update {
		out, err := yaml.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, file, string(out))
		return
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the pod was admitted, but the case has no out.yaml: %v", err)
	}
	if diff := cmp.Diff(readPod(t, file), got); diff != "" {
		t.Errorf("mutated pod differs from %s (-want +got):\n%s", file, diff)
	}
}

// golden compares got with the file's content, or writes it under -update. A
// missing file is the empty string, so a case without warnings needs no file.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if got == "" || got == "\n" {
			_ = os.Remove(file)
			return
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(want)) != strings.TrimSpace(got) {
		t.Errorf("%s differs (-want +got):\n%s", file, cmp.Diff(string(want), got))
	}
}
