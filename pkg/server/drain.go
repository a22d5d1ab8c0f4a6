package server

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// drain is the webhook's shutdown sequence. On SIGTERM a pod is removed from
// its Service's endpoints, but kube-apiserver (and kube-proxy, and any
// keep-alive connection it holds) learns of it only moments later, and keeps
// sending admissions meanwhile: with failurePolicy Fail, each one refused
// is a pod creation refused. So, like kube-apiserver's own
// --shutdown-delay-duration:
//
//  1. /readyz fails ("draining"), so that the pod leaves the endpoints even
//     where termination alone does not remove it;
//  2. for the drain delay the webhook keeps serving, every response asking
//     the caller to close its connection, so that its next admission opens a
//     new one, to a replica that is not going away;
//  3. then the manager is stopped: the webhook server stops accepting and
//     in-flight admissions finish, within the shutdown timeout.
//
// The pod's terminationGracePeriodSeconds must cover the delay and the
// timeout (the chart derives it from both).
type drain struct {
	draining atomic.Bool
	// after waits for the drain delay; time.After unless a test steps it.
	after func(time.Duration) <-chan time.Time
}

func newDrain() *drain { return &drain{after: time.After} }

// checker fails readiness once draining has begun.
func (d *drain) checker() healthz.Checker {
	return func(*http.Request) error {
		if d.draining.Load() {
			return errors.New("draining: the webhook is shutting down")
		}
		return nil
	}
}

// closing asks every caller to close its connection once draining has begun:
// net/http closes it after the response, and kube-apiserver's next request
// dials again, through the Service, to a replica still in its endpoints.
func (d *drain) closing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// run calls start (the manager's Start) under a context of its own and
// returns what start returns. When ctx ends (SIGTERM) it fails readiness,
// keeps start's context alive for delay, then cancels it. If start returns
// early (it failed) run returns at once.
func (d *drain) run(ctx context.Context, delay time.Duration, start func(context.Context) error) error {
	// The manager's context keeps ctx's values (the logger) but not its
	// cancellation: the signal starts the drain, not the stop.
	mgrCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	go func() { done <- start(mgrCtx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	d.draining.Store(true)
	log := logf.FromContext(ctx)
	log.Info("Draining: readiness fails, admissions are still served", "drainDelay", delay)
	if delay > 0 {
		select {
		case err := <-done:
			return err
		case <-d.after(delay):
		}
	}
	log.Info("Drain delay over: stopping, in-flight admissions finish")
	stop()
	return <-done
}
