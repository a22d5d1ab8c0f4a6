package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// policyNamespace creates an opted-in namespace carrying annotations from
// the start, as an admin would, so that the webhook's cache (or its live
// read, when the cache has not seen it yet) has them for the first pod.
func policyNamespace(t *testing.T, annotations map[string]string) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("policy-%d", nsCounter.Add(1))
	if err := env.Admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: testenv.OptedIn(), Annotations: annotations}}); err != nil {
		t.Fatal(err)
	}
	if err := env.Admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: mutate.DefaultServiceAccount}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// policyPods numbers the pods of these tests.
var policyPods = 0

// createPod creates a pod asking for audience and expiration ("" : none),
// running as default (no RBAC to ensure).
func createPod(ns, audience, expiration string) (*corev1.Pod, error) {
	ann := map[string]string{mutate.AnnotationAudience: audience}
	if expiration != "" {
		ann[mutate.AnnotationExpiration] = expiration
	}
	policyPods++
	p := pod(ns, fmt.Sprintf("p-%d", policyPods), ann)
	return p, env.Admin.Create(context.Background(), p)
}

// TestNamespacePolicy: through the API server, an admin's annotations on a
// namespace narrow what its pods may ask for. A pod over the namespace's
// maximum, or outside its audiences, is denied with a message naming the
// namespace annotation; a pod without expiration gets the namespace's
// default; a namespace maximum above --max-expiration does not widen it; a
// malformed annotation denies every pod naming itself; workload templates
// are checked the same way; and a change of policy applies to the next pods
// (the namespace cache may lag a moment: polled, bounded).
func TestNamespacePolicy(t *testing.T) {
	ctx := context.Background()
	ns := policyNamespace(t, map[string]string{
		mutate.AnnotationMaxExpiration: "30m", mutate.AnnotationAllowedAudiences: "vault", mutate.AnnotationDefaultExpiration: "20m",
	})

	_, err := createPod(ns, "vault", "2h")
	want := fmt.Sprintf(`token-projector.io/expiration: "2h" is not accepted: whole seconds (7200) or a Go duration (2h) from 10m to 30m (namespace %s's token-projector.io/max-expiration)`, ns)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("pod over the namespace's max: %v, want a denial containing %q", err, want)
	}
	_, err = createPod(ns, "sts.example.com", "")
	want = fmt.Sprintf(`token-projector.io/audience: "sts.example.com" is not accepted: audiences matching vault (namespace %s's token-projector.io/allowed-audiences)`, ns)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("pod outside the namespace's audiences: %v, want a denial containing %q", err, want)
	}
	p, err := createPod(ns, "vault", "")
	if err != nil {
		t.Fatal(err)
	}
	if !testenv.MutatedOnce(p) || status(t, p).ExpirationSeconds != 1200 {
		t.Errorf("pod without expiration: mutated=%v expirationSeconds=%d, want the namespace's default 1200", testenv.MutatedOnce(p), status(t, p).ExpirationSeconds)
	}

	// A workload's template is held to the same policy.
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "1h"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
		},
	}}
	if err := env.Admin.Create(ctx, deploy); err == nil || !strings.Contains(err.Error(), "token-projector.io/max-expiration)") {
		t.Errorf("Deployment over the namespace's max: %v, want a denial naming the namespace annotation", err)
	}

	// The admin raises the maximum: the next pods may ask for up to 1h,
	// once the webhook's cache has the change.
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"1h"}}}`, mutate.AnnotationMaxExpiration))
	if err := env.Admin.Patch(ctx, nsObj, patch); err != nil {
		t.Fatal(err)
	}
	var last error
	testenv.WaitFor(t, "a 45m pod admitted after the namespace's max went to 1h", 10*time.Second, func() bool {
		_, last = createPod(ns, "vault", "45m")
		return last == nil
	})
	if _, err := createPod(ns, "vault", "2h"); err == nil || !strings.Contains(err.Error(), "from 10m to 1h (namespace "+ns+"'s token-projector.io/max-expiration)") {
		t.Errorf("2h after the change: %v, want a denial naming the new 1h maximum", err)
	}

	// A namespace maximum above --max-expiration (24h) does not widen it.
	wide := policyNamespace(t, map[string]string{mutate.AnnotationMaxExpiration: "48h"})
	if _, err := createPod(wide, "vault", "36h"); err == nil || !strings.Contains(err.Error(), `"36h" is not accepted: whole seconds (7200) or a Go duration (2h) from 10m to 24h`) {
		t.Errorf("36h with a namespace max of 48h and --max-expiration 24h: %v, want a denial naming 24h", err)
	}
	if p, err := createPod(wide, "vault", "12h"); err != nil || status(t, p).ExpirationSeconds != 12*3600 {
		t.Errorf("12h in the same namespace: %v", err)
	}

	// A malformed annotation denies every pod asking for a token there.
	broken := policyNamespace(t, map[string]string{mutate.AnnotationDefaultExpiration: "5m"})
	want = fmt.Sprintf(`namespace %s's token-projector.io/default-expiration: "5m" is not accepted: whole seconds (1800) or a Go duration (30m) of whole seconds, from 10m to 24h (the webhook's --max-expiration); `+
		"no pod of namespace %s gets a token until a cluster admin fixes it", broken, broken)
	if _, err := createPod(broken, "vault", "1h"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("pod in a namespace with a malformed policy: %v, want a denial containing %q", err, want)
	}
}
