package rbac

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// ensurePanics counts the shared ensures that panicked: each failed the
// admissions (or the restore) waiting on it with the webhook's own error,
// and nothing else.
var ensurePanics = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "token_projector_ensure_panics_total",
	Help: "Shared ensures that panicked: the admissions or restore waiting on each got an error, the process went on. Any is a bug; the log has its stack.",
})

func init() {
	metrics.Registry.MustRegister(ensurePanics)
}

// flight is one shared ensure: concurrent callers for one account wait on
// it, each until it ends or until the caller's own context is done.
type flight struct {
	done chan struct{}
	res  Result
	err  error

	// callers counts the callers that waited on it, the one that started it
	// included.
	callers atomic.Int32

	mu sync.Mutex
	// claimed is set once one caller has been given res.Created.
	claimed bool
	// doing is what the ensure is waiting for, for the error of a caller
	// that gives up first.
	doing string
}

// work is what a flight does; progress tells it what it is waiting for.
type work func(ctx context.Context, progress func(string)) (Result, error)

func (f *flight) progress(what string) {
	f.mu.Lock()
	f.doing = what
	f.mu.Unlock()
}

// result is res for one caller: only the first is given Created.
func (f *flight) result() Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := f.res
	if f.claimed {
		res.Created = nil
	}
	f.claimed = true
	return res
}

// giveUp is the error of a caller whose own context ended first: what the
// shared ensure was still doing, and why the caller stopped waiting. The
// ensure goes on for the others.
func (f *flight) giveUp(cause error) error {
	f.mu.Lock()
	doing := f.doing
	f.mu.Unlock()
	return fmt.Errorf("stopped waiting, still %s: %w", orReading(doing), cause)
}

// await joins the flight of key, starting one that does w if none runs,
// and waits for it or for ctx.
func (e *Ensurer) await(ctx context.Context, key string, w work) (Result, error) {
	e.mu.Lock()
	f, ok := e.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		if e.flights == nil {
			e.flights = map[string]*flight{}
		}
		e.flights[key] = f
		// Detached from the caller that happens to start it, but not from
		// its logger; bounded by its own timeout.
		go e.fly(context.WithoutCancel(ctx), key, f, w)
	}
	f.callers.Add(1)
	e.mu.Unlock()

	select {
	case <-f.done:
		return f.result(), f.err
	case <-ctx.Done():
		return Result{}, f.giveUp(context.Cause(ctx))
	}
}

func (e *Ensurer) fly(ctx context.Context, key string, f *flight, w work) {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f.res, f.err = safely(ctx, key, f, w)
	// Forgotten before it is answered: a caller that comes later starts an
	// ensure of its own, which reads again by lookup. (A finished ensure
	// must not answer later callers itself: an object deleted since, which
	// the reconciler is restoring, would be reported present and never
	// restored.)
	e.mu.Lock()
	if e.flights[key] == f {
		delete(e.flights, key)
	}
	e.mu.Unlock()
	close(f.done)
}

// safely does w, turning a panic into its error. A flight runs on a
// goroutine of its own, where nothing else would recover it: a panic
// there, a bug in one ensure, would stop the process and fail every
// admission in flight on this replica, while the callers waiting on this
// one need only an error (a 500; the pod's controller retries).
func safely(ctx context.Context, key string, f *flight, w work) (res Result, err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		ensurePanics.Inc()
		err = fmt.Errorf("ensuring %s failed: internal error (panic: %v)", key, r)
		logf.FromContext(ctx).Error(err, "Ensure panicked", "flight", key, "stack", string(debug.Stack()))
		res = Result{}
	}()
	return w(ctx, f.progress)
}

// orReading is what a flight is doing, by default reading from the cache.
func orReading(doing string) string {
	if doing == "" {
		return "reading from the cache"
	}
	return doing
}
