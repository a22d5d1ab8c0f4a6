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
	Help: "API requests of admissions (creates, and the Ensurer's live reads) held by the webhook's rate limit (--api-qps, --api-burst), by result (waited, refused: the admission failed).",
}, []string{"result"})

// namespaceReadsThrottled is throttled for the live namespace reads, which
// have a budget of their own (--namespace-read-qps, --namespace-read-burst).
var namespaceReadsThrottled = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "token_projector_namespace_reads_throttled_total",
	Help: "Live namespace reads held by the webhook's namespace read limit (--namespace-read-qps, --namespace-read-burst), by result (waited, refused: the admission failed).",
}, []string{"result"})

func init() {
	metrics.Registry.MustRegister(throttled, namespaceReadsThrottled)
}

// apiLimiter is a token bucket that API requests of admissions wait on;
// client-go's own limiter is off (see unthrottled), since its default
// queued legitimate bursts past the ensure deadline.
//
// There are two, so that forged reviews cannot starve real admissions
// (newLimiters). Forged reviews sent straight to the webhook port, naming
// namespaces the cache does not show as opted in, cost live namespace
// reads: those wait on a bucket of their own. The Ensurer's creates and
// reads, which only a namespace opted in can cost, wait on the other.
type apiLimiter struct {
	bucket *rate.Limiter
	qps    float64
	burst  int
	// flags names the limit's flags in errors, "--x-qps, --x-burst".
	flags     string
	throttled *prometheus.CounterVec
}

// limiters are the webhook's two API budgets.
type limiters struct {
	// api is the Ensurer's: creates and live reads of accounts and their
	// Role and RoleBinding, for admissions and the reconciler's restores.
	api *apiLimiter
	// namespaceReads is the live namespace reads': anyone who reaches the
	// webhook port can spend it (without --client-ca), and spending it all
	// fails only admissions whose namespace the cache does not yet show as
	// opted in; never a create.
	namespaceReads *apiLimiter
}

func newLimiters(o Options) limiters {
	return limiters{
		api:            newAPILimiter(o.APIQPS, o.APIBurst, "--api-qps, --api-burst", throttled),
		namespaceReads: newAPILimiter(o.NamespaceReadQPS, o.NamespaceReadBurst, "--namespace-read-qps, --namespace-read-burst", namespaceReadsThrottled),
	}
}

func newAPILimiter(qps float64, burst int, flags string, counter *prometheus.CounterVec) *apiLimiter {
	return &apiLimiter{bucket: rate.NewLimiter(rate.Limit(qps), burst), qps: qps, burst: burst, flags: flags, throttled: counter}
}

// Wait takes a token, waiting for one if the bucket is empty; it fails at
// once, taking none, when none would come before ctx's deadline, so that
// the admission gets its 500 while kube-apiserver still listens.
func (l *apiLimiter) Wait(ctx context.Context) error {
	r := l.bucket.Reserve()
	if !r.OK() {
		return fmt.Errorf("the rate limiter allows no request (burst %d: %s)", l.burst, l.flags)
	}
	delay := r.Delay()
	if delay == 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
		r.Cancel()
		l.throttled.WithLabelValues("refused").Inc()
		return fmt.Errorf("no API request allowed before the admission's deadline: the webhook makes at most %g a second, in bursts of %d (%s)", l.qps, l.burst, l.flags)
	}
	l.throttled.WithLabelValues("waited").Inc()
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
