package mutate

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func annotatedTemplate() *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Annotations: map[string]string{AnnotationAudience: "vault", AnnotationServiceAccount: "web-sa", AnnotationExpiration: "1h", "example.com/owner": "team-a"},
			Labels:      map[string]string{"app": "web"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
}

// TestSameRequest: two templates ask for the same thing unless one of the
// keys the webhook reads (TemplateAnnotations, TemplateLabels: changed,
// added, even empty, or removed) or the account differs; the rest of the
// template, the webhook's own output and keys it does not read do not count.
func TestSameRequest(t *testing.T) {
	cases := map[string]struct {
		edit func(*corev1.PodTemplateSpec)
		same bool
	}{
		"unchanged":                   {func(*corev1.PodTemplateSpec) {}, true},
		"image":                       {func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].Image = "nginx:2" }, true},
		"other annotation":            {func(p *corev1.PodTemplateSpec) { p.Annotations["example.com/owner"] = "team-b" }, true},
		"other label":                 {func(p *corev1.PodTemplateSpec) { p.Labels["version"] = "2" }, true},
		"labels nil":                  {func(p *corev1.PodTemplateSpec) { p.Labels = nil }, true},
		"status annotation":           {func(p *corev1.PodTemplateSpec) { p.Annotations[AnnotationStatus] = "{}" }, true},
		"injected label":              {func(p *corev1.PodTemplateSpec) { p.Labels[LabelInjected] = InjectedTrue }, true},
		"namespace policy annotation": {func(p *corev1.PodTemplateSpec) { p.Annotations[AnnotationMaxExpiration] = "2h" }, true},
		"serviceAccountName":          {func(p *corev1.PodTemplateSpec) { p.Spec.ServiceAccountName = "other" }, false},
		"serviceAccount":              {func(p *corev1.PodTemplateSpec) { p.Spec.DeprecatedServiceAccount = "other" }, false},
	}
	for _, k := range TemplateAnnotations {
		cases[k+" changed"] = struct {
			edit func(*corev1.PodTemplateSpec)
			same bool
		}{func(p *corev1.PodTemplateSpec) { p.Annotations[k] = "changed" }, false}
		cases[k+" empty or removed"] = struct {
			edit func(*corev1.PodTemplateSpec)
			same bool
		}{func(p *corev1.PodTemplateSpec) {
			if _, ok := p.Annotations[k]; ok {
				delete(p.Annotations, k)
			} else {
				p.Annotations[k] = ""
			}
		}, false}
	}
	for _, k := range TemplateLabels {
		cases[k+" label"] = struct {
			edit func(*corev1.PodTemplateSpec)
			same bool
		}{func(p *corev1.PodTemplateSpec) { p.Labels[k] = "" }, false}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			edited := annotatedTemplate()
			tc.edit(edited)
			if got := SameRequest(annotatedTemplate(), edited); got != tc.same {
				t.Errorf("SameRequest(old, new) = %v, want %v", got, tc.same)
			}
			if got := SameRequest(edited, annotatedTemplate()); got != tc.same {
				t.Errorf("SameRequest(new, old) = %v, want %v", got, tc.same)
			}
		})
	}
}

// TestTemplateKeysAreAllMutateReads: every token-projector.io/ key of the
// contract (contract.go) that is not in TemplateAnnotations or
// TemplateLabels, set as an annotation or a label of a template, leaves
// what Mutate decides for it unchanged (the same Spec, warnings or error).
// A new annotation Parse reads must be added to TemplateAnnotations: else a
// workload UPDATE that changes only it would not be sent to the webhook.
func TestTemplateKeysAreAllMutateReads(t *testing.T) {
	decide := func(p *corev1.PodTemplateSpec) string {
		res, err := Mutate(&corev1.Pod{ObjectMeta: p.ObjectMeta, Spec: p.Spec}, DefaultConfig())
		if err != nil {
			return "error: " + err.Error()
		}
		return cmp.Diff(nil, []any{res.Spec, res.Warnings})
	}
	want := decide(annotatedTemplate())
	keys := contractKeys(t)
	if !slices.Contains(keys, AnnotationStatus) || !slices.Contains(keys, AnnotationAudience) {
		t.Fatalf("read %v from contract.go, missing the status or audience annotation", keys)
	}
	for _, k := range append(keys, Prefix+"unknown") {
		if slices.Contains(TemplateAnnotations, k) || slices.Contains(TemplateLabels, k) {
			continue
		}
		for _, v := range []string{"", "x", "vault", "2h", "other-sa", "/mnt", "app", InjectEnabled, InjectDisabled, InjectedTrue} {
			p := annotatedTemplate()
			p.Annotations[k] = v
			if got := decide(p); got != want {
				t.Errorf("annotation %s=%q, not in TemplateAnnotations, changes what Mutate decides:\n%s\nwant:\n%s", k, v, got, want)
			}
			p = annotatedTemplate()
			p.Labels[k] = v
			if got := decide(p); got != want {
				t.Errorf("label %s=%q, not in TemplateLabels, changes what Mutate decides:\n%s\nwant:\n%s", k, v, got, want)
			}
		}
	}
}

// contractKeys are the values of contract.go's constants written
// Prefix + "...".
func contractKeys(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "contract.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for _, v := range spec.Values {
			b, ok := v.(*ast.BinaryExpr)
			if !ok || b.Op != token.ADD {
				continue
			}
			if x, ok := b.X.(*ast.Ident); !ok || x.Name != "Prefix" {
				continue
			}
			if lit, ok := b.Y.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				keys[Prefix+s] = true
			}
		}
		return true
	})
	return slices.Sorted(maps.Keys(keys))
}
