package integration

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestMirrorPodUntouched: a kubelet's mirror pod (the API's copy of a static
// pod) that carries the audience annotation is created unchanged. The
// ServiceAccount plugin forbids mirror pods any ServiceAccount or token
// volume, so an injected pod would be rejected and the static pod would
// never be mirrored.
func TestMirrorPodUntouched(t *testing.T) {
	ns := namespace(t, true)
	p := pod(ns, "static-web-node1", classic("static"))
	p.Annotations[corev1.MirrorPodAnnotationKey] = "0123456789abcdef"
	p.Spec.ServiceAccountName = ""
	p.Spec.NodeName = "node1"
	if err := env.Admin.Create(context.Background(), p); err != nil {
		t.Fatalf("mirror pod refused: %v", err)
	}
	if len(tokenVolumes(p)) != 0 || p.Spec.ServiceAccountName != "" {
		t.Errorf("mirror pod mutated: %+v", p.Spec)
	}
	assertNoIdentity(t, ns, "static")
}
