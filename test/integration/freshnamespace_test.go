package integration

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// TestFreshlyLabelledNamespace: GitOps creates a namespace and its workloads
// in one apply, or labels a namespace and rolls its workloads right after.
// kube-apiserver's namespaceSelector sees the label at once; the webhook's
// namespace cache a moment later. 100 times over (50 created labelled, 50
// labelled after creation), an annotated pod is created right after the
// label: every pod is mutated (the webhook confirms a "not opted in" from its
// cache with a live read) rather than admitted without its token.
// test/faults' TestNamespaceCacheBehind holds the cache back on purpose.
func TestFreshlyLabelledNamespace(t *testing.T) {
	ctx := context.Background()
	var unmutated []string
	for i := range 100 {
		ns := fmt.Sprintf("fresh-%d", nsCounter.Add(1))
		if i%2 == 0 {
			if err := env.CreateNamespace(ctx, ns, testenv.OptedIn()); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := env.CreateNamespace(ctx, ns, nil); err != nil {
				t.Fatal(err)
			}
			obj := &corev1.Namespace{}
			obj.Name = ns
			patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, mutate.LabelInject, mutate.InjectEnabled))
			if err := env.Admin.Patch(ctx, obj, patch); err != nil {
				t.Fatal(err)
			}
		}
		p := pod(ns, "web", map[string]string{mutate.AnnotationAudience: "vault"})
		if err := env.Admin.Create(ctx, p); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if !testenv.MutatedOnce(p) {
			unmutated = append(unmutated, ns)
		}
	}
	if len(unmutated) > 0 {
		t.Errorf("%d of 100 pods admitted without their token, in %v", len(unmutated), unmutated)
	}
}
