package server

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// throttled counts the API requests of admissions that found the bucket of
// --api-burst empty, by result: waited for a token, or refused because none
// would come before the admission's deadline.
var throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "token_projector_api_throttled_total",
	Help: "API requests of admissions held by the webhook's rate limit (--api-qps, --api-burst), by result (waited, refused: the admission failed).",
}, []string{"result"})

func init() {
	metrics.Registry.MustRegister(throttled)
}

// apiLimiter is the one token bucket every API request an admission
// triggers waits on: forged reviews sent straight to the webhook port can
// cost live namespace reads and account creates, and client-go's own
// limiter is off (see unthrottled), since its default queued legitimate
// bursts past the ensure deadline.
type apiLimiter struct {
	bucket *rate.Limiter
	qps    float64
	burst  int
}

func newAPILimiter(qps float64, burst int) *apiLimiter {
	return &apiLimiter{bucket: rate.NewLimiter(rate.Limit(qps), burst), qps: qps, burst: burst}
}

// Wait takes a token, waiting for one if the bucket is empty; it fails at
// once, taking none, when none would come before ctx's deadline, so that
// the admission gets its 500 while kube-apiserver still listens.
func (l *apiLimiter) Wait(ctx context.Context) error {
	r := l.bucket.Reserve()
	if !r.OK() {
		return fmt.Errorf("the rate limiter allows no request (--api-burst %d)", l.burst)
	}
	delay := r.Delay()
	if delay == 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
		r.Cancel()
		throttled.WithLabelValues("refused").Inc()
		return fmt.Errorf("no API request allowed before the admission's deadline: the webhook makes at most %g a second, in bursts of %d (--api-qps, --api-burst)", l.qps, l.burst)
	}
	throttled.WithLabelValues("waited").Inc()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return context.Cause(ctx)
	}
}
