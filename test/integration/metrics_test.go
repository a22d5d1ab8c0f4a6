package integration

import (
	"context"
	"testing"

	"github.com/token-projector/token-projector/test/testenv"
)

// writes is the number of objects the webhook created.
func writes(t *testing.T) float64 {
	return testenv.Counter(t, "token_projector_api_writes_total", map[string]string{"result": "created"})
}

// TestWarmPathMakesNoAPICalls admits a second pod for an account whose
// objects exist: the webhook answers from its caches, with no API call.
func TestWarmPathMakesNoAPICalls(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	if err := env.Admin.Create(ctx, pod(ns, "cold", classic("warm"))); err != nil {
		t.Fatal(err)
	}
	apiCalls := func() float64 {
		return testenv.Counter(t, "token_projector_api_writes_total", nil) + testenv.Counter(t, "token_projector_api_reads_total", nil)
	}
	cached := func() float64 {
		return testenv.Counter(t, "token_projector_ensure_total", map[string]string{"result": "cached"})
	}
	admitted := func(outcome string) float64 {
		return testenv.Counter(t, "token_projector_admissions_total", map[string]string{"resource": "pod", "outcome": outcome})
	}
	calls, hits, mutated, unchanged := apiCalls(), cached(), admitted("mutated"), admitted("unchanged")
	if err := env.Admin.Create(ctx, pod(ns, "warm", classic("warm"))); err != nil {
		t.Fatal(err)
	}
	if got := apiCalls() - calls; got != 0 {
		t.Errorf("warm admission made %v API calls, want 0", got)
	}
	if got := admitted("mutated") - mutated; got != 1 {
		t.Errorf("mutated admissions counted: %v, want 1", got)
	}
	// kube-apiserver may call the webhook again on its own output
	// (reinvocationPolicy IfNeeded); each call finds all three objects cached.
	calledTimes := admitted("mutated") - mutated + admitted("unchanged") - unchanged
	if got := cached() - hits; got != 3*calledTimes {
		t.Errorf("%v webhook calls found %v objects in cache, want %v", calledTimes, got, 3*calledTimes)
	}
}

// TestWebhookServerMetricsCoverLean: the pod path is served by Lean, and
// controller-runtime's webhook server still counts its requests by path and
// code (controller_runtime_webhook_requests_total), as it did around
// admission.Webhook.
func TestWebhookServerMetricsCoverLean(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	served := func() float64 {
		return testenv.Counter(t, "controller_runtime_webhook_requests_total", map[string]string{"webhook": "/mutate-pods", "code": "200"})
	}
	before := served()
	if err := env.Admin.Create(ctx, pod(ns, "counted", classic("counted"))); err != nil {
		t.Fatal(err)
	}
	if got := served() - before; got < 1 {
		t.Errorf("controller_runtime_webhook_requests_total{webhook=/mutate-pods,code=200} grew by %v for an admitted pod, want at least 1", got)
	}
}
