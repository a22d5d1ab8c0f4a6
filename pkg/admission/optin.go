package admission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// Results of a live namespace read: the values of its metric.
const (
	liveOptedIn    = "opted-in"
	liveNotOptedIn = "not-opted-in"
	liveNotFound   = "not-found"
	liveError      = "error"
)

// Limiter bounds the webhook's own API traffic; *rate.Limiter is one. Wait
// returns once a request may go, or at once with an error if none may
// before ctx's deadline.
type Limiter interface {
	Wait(ctx context.Context) error
}

// sharedRead is the option of a read from the cache without a copy (a
// variable: a literal option list is an allocation per call).
var sharedRead = []client.GetOption{client.UnsafeDisableDeepCopy}

func namespaceMeta() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}

func labelledIn(ns *metav1.PartialObjectMetadata) bool {
	return ns != nil && ns.Labels[mutate.LabelInject] == mutate.InjectEnabled
}

// optedIn says whether namespace is opted in and, if it is, returns its
// annotations (the namespace policy). The cache answers when it says "opted
// in"; a miss or an unlabelled namespace is confirmed with a live read
// (confirmOptIn), whose object then supplies the annotations, since the
// cache may not have seen a label set a moment ago.
func (h *PodHandler) optedIn(ctx context.Context, namespace string, start time.Time) (map[string]string, bool, error) {
	ns := namespaceMeta()
	// Shared with the cache, not copied: its labels and annotations are
	// only read, here and by ForNamespace (a deep copy per admission was
	// a sixth of the handler's allocations).
	err := h.Namespaces.Get(ctx, client.ObjectKey{Name: namespace}, ns, sharedRead...)
	switch {
	case err == nil && labelledIn(ns):
		return ns.Annotations, true, nil
	case err != nil && !apierrors.IsNotFound(err):
		return nil, false, fmt.Errorf("reading namespace %s from cache: %w", namespace, err)
	}
	live, err := h.confirmOptIn(ctx, namespace, start)
	if err != nil || !labelledIn(live) {
		return nil, false, err
	}
	return live.Annotations, true, nil
}

// confirmOptIn reads the namespace from the API server when the cache says
// it is not opted in. GitOps creates a namespace and its workloads in one
// apply: kube-apiserver's namespaceSelector already sees the label while our
// informer has not yet, and skipping would start the pod without its token.
// kube-apiserver only sends pods of labelled namespaces, so this read happens
// on such races (and on forged requests), not on the warm path.
//
// The read takes at most the first third of the admission's deadline
// (EnsureTimeout from start), waiting on the NamespaceReadLimiter included,
// so that the ensure after it still answers within kube-apiserver's
// timeout. Concurrent admissions in one namespace share one read
// (namespaceReads). That limiter is not the Ensurer's: forged reviews can
// spend it all, and must not thereby fail the creates of real admissions.
//
// It returns nil for a namespace that does not exist. A failed read, or one
// the NamespaceReadLimiter does not allow in time, is the webhook's own
// failure (500), never a skip: the namespaceSelector says the namespace is
// labelled, so skipping would silently start the pod without its token,
// whereas an error fails the creation visibly (failurePolicy Fail) and its
// controller retries it. No "not opted in" answer is ever remembered: it
// would let a forged review make the real pods of a namespace labelled a
// moment later skip injection.
func (h *PodHandler) confirmOptIn(ctx context.Context, namespace string, start time.Time) (*metav1.PartialObjectMetadata, error) {
	if h.LiveNamespaces == nil {
		return nil, nil
	}
	share := h.EnsureTimeout / 3
	if h.EnsureTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(share))
		defer cancel()
	}
	ns, err := h.reads.get(ctx, namespace, h.readNamespace)
	var limited *rateLimitedError
	switch {
	case errors.As(err, &limited):
		return nil, fmt.Errorf("namespace %s is not labelled %s=%s in the webhook's cache, and the webhook's namespace read rate limit (--namespace-read-qps, --namespace-read-burst) was reached "+
			"before it could read it from the API server to confirm: %w", namespace, mutate.LabelInject, mutate.InjectEnabled, limited.err)
	case err != nil && errors.Is(err, context.DeadlineExceeded) && h.EnsureTimeout > 0:
		return nil, fmt.Errorf("namespace %s is not labelled %s=%s in the webhook's cache, and reading it from the API server to confirm failed: "+
			"no answer within %s (a third of --ensure-timeout): %w", namespace, mutate.LabelInject, mutate.InjectEnabled, share, err)
	case err != nil:
		return nil, fmt.Errorf("namespace %s is not labelled %s=%s in the webhook's cache, and reading it from the API server to confirm failed: %w",
			namespace, mutate.LabelInject, mutate.InjectEnabled, err)
	}
	return ns, nil
}

// rateLimitedError is a live read the NamespaceReadLimiter did not allow
// in time.
type rateLimitedError struct{ err error }

func (e *rateLimitedError) Error() string { return "rate limited: " + e.err.Error() }

// rateLimited reports whether err is, or wraps, a *rateLimitedError. (Its
// own function: the target errors.As needs escapes, an allocation the warm
// path, which has no error, should not pay.)
func rateLimited(err error) bool {
	var limited *rateLimitedError
	return errors.As(err, &limited)
}

// readNamespace is one live read, after the NamespaceReadLimiter allows
// it; nil for a namespace that does not exist.
func (h *PodHandler) readNamespace(ctx context.Context, namespace string, sending func()) (*metav1.PartialObjectMetadata, error) {
	if h.NamespaceReadLimiter != nil {
		if err := h.NamespaceReadLimiter.Wait(ctx); err != nil {
			return nil, &rateLimitedError{err: err}
		}
	}
	sending()
	ns := namespaceMeta()
	err := h.LiveNamespaces.Get(ctx, client.ObjectKey{Name: namespace}, ns)
	switch {
	case apierrors.IsNotFound(err):
		liveReads.WithLabelValues(liveNotFound).Inc()
		return nil, nil
	case err != nil:
		liveReads.WithLabelValues(liveError).Inc()
		return nil, err
	case labelledIn(ns):
		liveReads.WithLabelValues(liveOptedIn).Inc()
	default:
		liveReads.WithLabelValues(liveNotOptedIn).Inc()
	}
	return ns, nil
}

// namespaceReads lets concurrent admissions in one namespace share one live
// read. A read runs detached from the admission that started it, under that
// admission's deadline, so that one caller going away fails no other; each
// caller waits for it or for its own deadline.
//
// A caller that joins a read whose request has already gone out may get an
// answer from before a label kube-apiserver has since seen. So it takes
// "opted in" and errors from such a read (neither skips a pod), but not
// "not opted in": for that it reads again, joining the next read, which is
// sent after it arrived.
//
// Nor does a caller fail with another's deadline: a read that ran out of
// the time of the admission that started it (its context expired, or the
// limiter would give it no token before that deadline) answers only the
// callers with no more time than that; one with a later deadline reads
// again, joining the next read or starting it under its own deadline.
//
// Every caller therefore waits for at most two reads, besides reads that
// ran out of an earlier deadline than its own, and a namespace has at most
// one read in flight.
type namespaceReads struct {
	mu sync.Mutex
	// clock orders arrivals and sends: a read answers a caller for sure
	// if it was sent after the caller arrived.
	clock   uint64
	flights map[string]*namespaceRead
}

// namespaceRead is one shared live read.
type namespaceRead struct {
	done chan struct{}
	ns   *metav1.PartialObjectMetadata // shared: read only
	err  error
	// sentAt is the clock when the request went out (0: not yet); set
	// under namespaceReads.mu, read by callers once done is closed.
	sentAt uint64
	// deadline is the deadline of the admission that started it, which
	// it runs under (zero: none); outOfTime is set when it failed for
	// running out of that time. Both are read by callers once done is
	// closed.
	deadline  time.Time
	outOfTime bool
	// callers counts the admissions that waited on it, for tests.
	callers int
}

type readFunc func(ctx context.Context, namespace string, sending func()) (*metav1.PartialObjectMetadata, error)

func (r *namespaceReads) get(ctx context.Context, namespace string, read readFunc) (*metav1.PartialObjectMetadata, error) {
	r.mu.Lock()
	r.clock++
	arrived := r.clock
	r.mu.Unlock()
	for {
		f := r.join(ctx, namespace, read)
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		switch {
		case f.outOfTime && later(ctx, f.deadline):
			continue
		case f.sentAt > arrived || f.err != nil || labelledIn(f.ns):
			return f.ns, f.err
		}
	}
}

// later reports whether ctx has more time than the deadline of a read that
// ran out of it: a later deadline, or none.
func later(ctx context.Context, deadline time.Time) bool {
	own, ok := ctx.Deadline()
	return !deadline.IsZero() && (!ok || own.After(deadline))
}

// join returns the namespace's read in flight, starting one if none is.
func (r *namespaceReads) join(ctx context.Context, namespace string, read readFunc) *namespaceRead {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.flights[namespace]
	if !ok {
		f = &namespaceRead{done: make(chan struct{})}
		if r.flights == nil {
			r.flights = map[string]*namespaceRead{}
		}
		r.flights[namespace] = f
		detached := context.WithoutCancel(ctx)
		cancel := context.CancelFunc(func() {})
		if deadline, ok := ctx.Deadline(); ok {
			detached, cancel = context.WithDeadline(detached, deadline)
			f.deadline = deadline
		}
		go func() {
			defer cancel()
			ns, err := read(detached, namespace, func() {
				r.mu.Lock()
				r.clock++
				f.sentAt = r.clock
				r.mu.Unlock()
			})
			r.mu.Lock()
			f.ns, f.err = ns, err
			f.outOfTime = err != nil && (detached.Err() != nil || rateLimited(err))
			// Forgotten before it is answered: a caller that comes later
			// starts a read of its own.
			delete(r.flights, namespace)
			r.mu.Unlock()
			close(f.done)
		}()
	}
	f.callers++
	return f
}

// waiting is how many admissions have joined namespace's read in flight
// (0: none in flight), for tests.
func (r *namespaceReads) waiting(namespace string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.flights[namespace]; ok {
		return f.callers
	}
	return 0
}
