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
	l := newAPILimiter(20, 2) // a token every 50ms
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

// TestAPIRateOptions: the webhook refuses to start with a limit that would
// refuse every admission's API request.
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
	}
}
