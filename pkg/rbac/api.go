package rbac

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// The Ensurer's API calls: creates, and live reads. Each waits for the
// Limiter first; the warm path makes none.

// rateLimitedError is an API call the Limiter did not allow.
type rateLimitedError struct {
	doing string
	err   error
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("the webhook's API rate limit (--api-qps, --api-burst) was reached before %s: %v", e.doing, e.err)
}

func (e *rateLimitedError) Unwrap() error { return e.err }

// IsRateLimited reports whether err is, or wraps, an API call of the
// Ensurer that its Limiter did not allow.
func IsRateLimited(err error) bool {
	var limited *rateLimitedError
	return errors.As(err, &limited)
}

// allow waits for the Limiter before the API call doing describes.
func (e *Ensurer) allow(ctx context.Context, doing string, progress func(string)) error {
	if e.Limiter != nil {
		progress("waiting for the webhook's API rate limit before " + doing)
		if err := e.Limiter.Wait(ctx); err != nil {
			return &rateLimitedError{doing: doing, err: err}
		}
	}
	progress(doing)
	return nil
}

// existingError is a create that met AlreadyExists, with the existing
// object as read live.
type existingError struct{ obj client.Object }

func (e *existingError) Error() string { return "already exists" }

// create creates w's object and returns it, held as created here until the
// cache shows it. AlreadyExists (another replica, a cache that has not
// caught up, or the object's owner a moment ago) is read live and returned
// as an *existingError for the caller to judge.
func (e *Ensurer) create(ctx context.Context, w wanted, progress func(string)) (client.Object, error) {
	if err := e.allow(ctx, "creating "+w.String(), progress); err != nil {
		return nil, err
	}
	k := objectKey{w.kind, w.namespace, w.name}
	obj := w.build()
	// Announced before it is sent: the informer's event of the new object
	// may come before the API server's answer.
	e.uncached.begin(k, e.clock())
	err := e.Writer.Create(ctx, obj)
	var created client.Object
	if err == nil {
		created = obj
	}
	e.uncached.end(k, created, e.CacheWait, e.clock())
	switch {
	case err == nil:
		apiWrites.WithLabelValues(w.kind, "created").Inc()
		logf.FromContext(ctx).V(1).Info("Created object", "kind", w.kind, "namespace", w.namespace, "name", w.name)
		return obj, nil
	case apierrors.IsAlreadyExists(err):
		apiWrites.WithLabelValues(w.kind, "exists").Inc()
		existing, err := e.read(ctx, w, "reading existing "+w.String(), progress)
		if err != nil {
			return nil, err
		}
		if existing == nil {
			return nil, fmt.Errorf("reading existing %s: deleted since its create met it", w)
		}
		return nil, &existingError{obj: existing}
	default:
		apiWrites.WithLabelValues(w.kind, "error").Inc()
		return nil, fmt.Errorf("creating %s: %w", w, err)
	}
}

// read reads w's object from the API server; nil if there is none.
func (e *Ensurer) read(ctx context.Context, w wanted, doing string, progress func(string)) (client.Object, error) {
	if err := e.allow(ctx, doing, progress); err != nil {
		return nil, err
	}
	apiReads.WithLabelValues(w.kind).Inc()
	obj := w.empty()
	err := e.Live.Get(ctx, w.key(), obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	return obj, nil
}
