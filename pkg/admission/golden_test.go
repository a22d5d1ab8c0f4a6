package admission

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// GoldenPods are pkg/mutate's golden input pods as JSON, by case name.
// Exported from a test file so that this package's tests and the external
// admission_test ones read them one way.
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
