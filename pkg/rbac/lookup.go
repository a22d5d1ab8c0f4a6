package rbac

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// source is where lookup found an object.
type source int8

const (
	// missing: nowhere; an ensure creates it.
	missing source = iota
	// cached: in the informer cache.
	cached
	// createdHere: created by this Ensurer less than CacheWait ago, and
	// the informer has delivered no event of it yet.
	createdHere
	// remembered: of our name, not labelled as ours but identical, read
	// live less than ForeignMemory ago (the cache never holds it).
	remembered
)

// result is how an object found so is counted in token_projector_ensure_total.
func (s source) result() string {
	if s == remembered {
		return "remembered"
	}
	return "cached" // created here counts as the cache will soon show it
}

// sharedRead reads from the cache without a deep copy: every caller of
// lookup compares what it read and drops it, never changes it nor hands
// it on, so it may share its maps and slices with the cache (the deep
// copies were half the cost of the warm path's reads).
var sharedRead = []client.GetOption{client.UnsafeDisableDeepCopy}

// lookup is the one rule by which every path (the warm path, the shared
// ensures, the dry run, restore) learns whether an object exists, before
// it would create it: first the informer cache (into is filled from it);
// on a miss, the objects this Ensurer knows exist that the cache does not
// show (uncached). It counts nothing: the warm path must count nothing
// when it declines, the other paths count what they then do.
func (e *Ensurer) lookup(ctx context.Context, kind string, key client.ObjectKey, into client.Object) (source, error) {
	err := e.Cache.Get(ctx, key, into, sharedRead...)
	switch {
	case err == nil:
		return cached, nil
	case !apierrors.IsNotFound(err):
		return missing, fmt.Errorf("reading %s %s from cache: %w", kind, key, err)
	}
	return e.uncached.holds(objectKey{kind, key.Namespace, key.Name}, e.clock()), nil
}

// lookupAccount says, by lookup, whose an account is: an account created
// here that the cache has not shown yet is the webhook's.
func (e *Ensurer) lookupAccount(ctx context.Context, namespace, serviceAccount string) (account, source, error) {
	m := serviceAccountMeta()
	src, err := e.lookup(ctx, kindServiceAccount, client.ObjectKey{Namespace: namespace, Name: serviceAccount}, m)
	switch {
	case err != nil || src == missing:
		return accountMissing, src, err
	case src == cached:
		return classify(m), src, nil
	}
	return accountManaged, src, nil
}

// lookupGrant says, by lookup, whether the Role or RoleBinding w exists as
// wanted; one cached that grants something else is a *ConflictError.
func (e *Ensurer) lookupGrant(ctx context.Context, w wanted) (source, error) {
	have := w.empty()
	src, err := e.lookup(ctx, w.kind, w.key(), have)
	if err == nil && src == cached {
		err = w.accept(have)
	}
	return src, err
}
