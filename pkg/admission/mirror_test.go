package admission

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestMirrorPodsSkipped: a kubelet's mirror pod that asks for a token (its
// static pod manifest carries the annotation) is allowed unchanged with no
// writes: the ServiceAccount plugin forbids mirror pods any ServiceAccount
// token volume, so a patch would keep the static pod from being mirrored.
func TestMirrorPodsSkipped(t *testing.T) {
	ann := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "nginx", corev1.MirrorPodAnnotationKey: "0123abcd"}
	req := request("demo", admissionv1.Create, podJSON(t, ann, nil, ""))
	counted := testutil.ToFloat64(admissions.WithLabelValues(resourcePod, outcomeSkipped, reasonMirrorPod))
	ens := &stubEnsurer{}
	resp := newHandler(ens).Handle(context.Background(), req)
	if !resp.Allowed || len(resp.Patches) != 0 || len(ens.calls) != 0 {
		t.Fatalf("allowed=%v patches=%v ensured=%v, want allowed, no patch, no ensure", resp.Allowed, resp.Patches, ens.calls)
	}
	if got := testutil.ToFloat64(admissions.WithLabelValues(resourcePod, outcomeSkipped, reasonMirrorPod)) - counted; got != 1 {
		t.Errorf("admissions{reason=%q} counted %v, want 1", reasonMirrorPod, got)
	}
}
