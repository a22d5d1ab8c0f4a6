package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// TestFreshlyLabelledNamespace: GitOps creates a namespace and its workloads
// in one apply. kube-apiserver's namespaceSelector sees the label at once;
// the webhook's namespace cache a moment later. 100 times over, a labelled
// namespace is created and an annotated pod immediately after: every pod is
// mutated (the webhook confirms a "not opted in" from its cache with a live
// read) rather than admitted without its token.
func TestFreshlyLabelledNamespace(t *testing.T) {
	ctx := context.Background()
	var unmutated []string
	for i := range 100 {
		ns := fmt.Sprintf("fresh-%d-%d", nsCounter.Add(1), i)
		if err := env.CreateNamespace(ctx, ns, testenv.OptedIn()); err != nil {
			t.Fatal(err)
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
