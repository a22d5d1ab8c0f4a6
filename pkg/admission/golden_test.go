package admission

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The test inputs below are exported from a test file so that this
// package's tests and the external admission_test ones read them one way.

// GoldenPods are pkg/mutate's golden input pods as JSON, by case name.
func GoldenPods(t *testing.T) map[string]string {
	t.Helper()
	ins, _ := filepath.Glob("../mutate/testdata/*/in.yaml")
	if len(ins) == 0 {
		t.Fatal("no golden pods found")
	}
	pods := map[string]string{}
	for _, in := range ins {
		b, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		pod, err := yaml.YAMLToJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		pods[filepath.Base(filepath.Dir(in))] = string(pod)
	}
	return pods
}

// CorpusInputs reads the []byte inputs of a fuzz corpus directory, by file name.
func CorpusInputs(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatalf("no corpus in %s", dir)
	}
	out := map[string][]byte{}
	for _, file := range files {
		values := CorpusValues(t, file)
		if len(values) != 1 {
			t.Fatalf("%s: %d values, want one []byte", file, len(values))
		}
		out[filepath.Base(file)] = []byte(values[0])
	}
	return out
}

// CorpusValues are the string and []byte values of a "go test fuzz v1" file,
// in order; other types are left out.
func CorpusValues(t testing.TB, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		for _, prefix := range []string{"[]byte(", "string("} {
			if quoted, ok := strings.CutPrefix(line, prefix); ok {
				v, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				out = append(out, v)
			}
		}
	}
	return out
}
