package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestAPILimiter: a full bucket answers at once; an empty one makes a
// request wait for its token when it comes before the deadline, and refuses
// it at once (taking no token) when it would not; each counted.
func TestAPILimiter(t *testing.T) {
	l := newAPILimiter(20, 2, "--api-qps, --api-burst", throttled) // a token every 50ms
	waited, refused := testutil.ToFloat64(throttled.WithLabelValues("waited")), testutil.ToFloat64(throttled.WithLabelValues("refused"))
	for range 2 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(throttled.WithLabelValues("waited")) - waited; got != 0 {
		t.Errorf("the burst counted %v waits, want 0", got)
	}

	short, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := l.Wait(short)
	if err == nil || !strings.Contains(err.Error(), "at most 20 a second, in bursts of 2 (--api-qps, --api-burst)") {
		t.Errorf("empty bucket, 5ms deadline: %v, want a refusal naming the limit", err)
	}
	if took := time.Since(start); took > 5*time.Millisecond+time.Second/2 {
		t.Errorf("the refusal took %s: it should not wait", took)
	}
	if got := testutil.ToFloat64(throttled.WithLabelValues("refused")) - refused; got != 1 {
		t.Errorf("refusals counted %v, want 1", got)
	}

	long, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := l.Wait(long); err != nil {
		t.Errorf("empty bucket, 10s deadline: %v, want a token after a wait", err)
	}
	if got := testutil.ToFloat64(throttled.WithLabelValues("waited")) - waited; got != 1 {
		t.Errorf("waits counted %v, want 1", got)
	}
}

// TestAPIRateOptions: the webhook refuses to start with a limit, of either
// budget, that would refuse every admission's API request.
func TestAPIRateOptions(t *testing.T) {
	for _, tc := range []struct {
		qps   float64
		burst int
		ok    bool
	}{{200, 1000, true}, {0.5, 1, true}, {0, 1000, false}, {-1, 1000, false}, {200, 0, false}} {
		o := DefaultOptions()
		o.APIQPS, o.APIBurst = tc.qps, tc.burst
		if err := o.Validate(); (err == nil) != tc.ok {
			t.Errorf("--api-qps=%v --api-burst=%d: %v, want ok=%v", tc.qps, tc.burst, err, tc.ok)
		}
		o = DefaultOptions()
		o.NamespaceReadQPS, o.NamespaceReadBurst = tc.qps, tc.burst
		if err := o.Validate(); (err == nil) != tc.ok {
			t.Errorf("--namespace-read-qps=%v --namespace-read-burst=%d: %v, want ok=%v", tc.qps, tc.burst, err, tc.ok)
		}
	}
}

// TestNamespaceReadsHaveTheirOwnBudget: the live namespace reads, which
// forged reviews can cost, wait on a bucket apart from the creates': with
// it spent, and refusing, the creates' bucket still holds its whole burst;
// each refusal names its own flags and is counted in its own metric.
func TestNamespaceReadsHaveTheirOwnBudget(t *testing.T) {
	o := DefaultOptions()
	o.APIQPS, o.APIBurst = 0.001, 3
	o.NamespaceReadQPS, o.NamespaceReadBurst = 0.001, 2
	l := newLimiters(o)
	refusedReads, refusedAPI := testutil.ToFloat64(namespaceReadsThrottled.WithLabelValues("refused")), testutil.ToFloat64(throttled.WithLabelValues("refused"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i := range 20 { // a flood at ten times the namespace read burst
		err := l.namespaceReads.Wait(ctx)
		if (err == nil) != (i < 2) {
			t.Fatalf("namespace read %d: %v, want a token only for the first 2", i, err)
		}
		if i >= 2 && !strings.Contains(err.Error(), "(--namespace-read-qps, --namespace-read-burst)") {
			t.Errorf("namespace read refusal %q does not name its flags", err)
		}
	}
	for i := range 3 {
		if err := l.api.Wait(ctx); err != nil {
			t.Fatalf("create %d after the namespace read flood: %v, want the creates' whole burst", i, err)
		}
	}
	if err := l.api.Wait(ctx); err == nil || !strings.Contains(err.Error(), "(--api-qps, --api-burst)") {
		t.Errorf("create over --api-burst: %v, want a refusal naming --api-qps", err)
	}
	if got := testutil.ToFloat64(namespaceReadsThrottled.WithLabelValues("refused")) - refusedReads; got != 18 {
		t.Errorf("namespace read refusals counted %v, want 18", got)
	}
	if got := testutil.ToFloat64(throttled.WithLabelValues("refused")) - refusedAPI; got != 1 {
		t.Errorf("API refusals counted %v, want 1", got)
	}
}
