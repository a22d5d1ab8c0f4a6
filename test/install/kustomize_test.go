package install

import (
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/test/render"
)

// installerLabels say which tool installed an object; they are the only
// difference allowed between the chart's defaults and config/default.
var installerLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by"}

// TestKustomizeMatchesChartDefaults: `kubectl apply -k config/default` and
// `helm install token-projector -n token-projector-system` create the same
// objects, field for field, apart from the installer's own labels and the
// Namespace that kustomize creates (Helm's --create-namespace does).
func TestKustomizeMatchesChartDefaults(t *testing.T) {
	kustomized, err := render.Kustomize(root, "config/default")
	if err != nil {
		t.Fatal(err)
	}
	sameObjects(t, kustomized, chart(t))
}

// TestKustomizeGCComponentMatchesChart: config/default with the config/gc
// component enabled, as its comment says (components: [../gc]), creates what
// the chart creates with gc.enabled=true.
func TestKustomizeGCComponentMatchesChart(t *testing.T) {
	// A copy of config/ in memory, config/default's kustomization edited.
	fs := filesys.MakeFsInMemory()
	err := filepath.WalkDir(filepath.Join(root, "config"), func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == filepath.Join("config", "default", "kustomization.yaml") {
			b = append(b, "\ncomponents:\n- ../gc\n"...)
		}
		return fs.WriteFile(filepath.Join("/", rel), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/config/default")
	if err != nil {
		t.Fatal(err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	kustomized, err := render.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if render.Find(kustomized, "ClusterRole", "token-projector-gc") == nil {
		t.Fatalf("config/gc adds no token-projector-gc: %v", render.Keys(kustomized))
	}
	sameObjects(t, kustomized, chart(t, "--set", "gc.enabled=true"))
}

func sameObjects(t *testing.T, kustomized, charted []*unstructured.Unstructured) {
	t.Helper()
	var namespaceObj *unstructured.Unstructured
	kustomized = slices.DeleteFunc(kustomized, func(o *unstructured.Unstructured) bool {
		if o.GetKind() == "Namespace" {
			namespaceObj = o
			return true
		}
		return false
	})
	if namespaceObj == nil || namespaceObj.GetName() != ns {
		t.Errorf("config/default creates no Namespace %s", ns)
	}
	if got, want := render.Keys(kustomized), render.Keys(charted); !slices.Equal(got, want) {
		t.Fatalf("objects differ:\nkustomize: %v\nchart:     %v", got, want)
	}
	for _, k := range kustomized {
		c := render.Find(charted, k.GetKind(), k.GetName())
		if c.GetNamespace() != k.GetNamespace() {
			t.Errorf("%s: namespace %q, chart %q", render.Key(k), k.GetNamespace(), c.GetNamespace())
		}
		if diff := cmp.Diff(comparable(t, c), comparable(t, k)); diff != "" {
			t.Errorf("%s differs (-chart +kustomize):\n%s", render.Key(k), diff)
		}
	}
}

// comparable drops the installer's labels and normalises the object through
// YAML, so that numbers and strings compare alike whoever produced them.
func comparable(t *testing.T, o *unstructured.Unstructured) map[string]any {
	t.Helper()
	o = o.DeepCopy()
	l := o.GetLabels()
	for _, k := range installerLabels {
		delete(l, k)
	}
	o.SetLabels(l)
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
