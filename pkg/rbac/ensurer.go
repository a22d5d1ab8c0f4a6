package rbac

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ConflictError is an object of our name that we did not create and that
// differs from what we would create, or one of ours that someone changed. The
// webhook denies the pod: it never overwrites what is not its own.
type ConflictError struct {
	Kind, Namespace, Name, Reason string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %s/%s already exists and %s; delete or rename it, or name another ServiceAccount in the pod",
		e.Kind, e.Namespace, e.Name, e.Reason)
}

// IsConflict reports whether err is, or wraps, a *ConflictError.
func IsConflict(err error) bool {
	var ce *ConflictError
	return errors.As(err, &ce)
}

// Created is one object the Ensurer created, as the API server returned it.
type Created struct {
	Kind   string
	Object client.Object
}

// Result is what an ensure did, or (dry run) would do.
type Result struct {
	// Created are the objects created. Of the callers that share one ensure,
	// only one is given them, so that each creation is reported once.
	Created []Created
	// RBAC is true when the Role and RoleBinding were ensured: the account
	// is one the webhook created, or its owner labelled it
	// token-projector.io/inject=enabled. False for any other existing
	// account, which is left exactly as it is.
	RBAC bool
	// ManagedAccount is true when the ServiceAccount is one the webhook
	// created (it carries the managed-by label).
	ManagedAccount bool
}

// DefaultTimeout bounds one shared ensure when Ensurer.Timeout is not set.
const DefaultTimeout = 10 * time.Second

// DefaultForeignMemory is ForeignMemory when not set. A Role or RoleBinding
// of our name that is not labelled as ours is never cached (the caches hold
// only our own), so without a memory every admission for its account would
// cost 2 creates and 2 live reads; with a minute, that happens at most once
// a minute per account and object, and a change to such an object, or its
// deletion, goes unseen for at most a minute, in which pods are admitted as
// if it were unchanged (the webhook grants nothing meanwhile: the object is
// its owner's).
const DefaultForeignMemory = time.Minute

// Limiter bounds the Ensurer's API calls; *rate.Limiter
// (golang.org/x/time/rate) is one. Wait returns once a call may go, or with
// an error if none may.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Ensurer makes sure a ServiceAccount and its token-creating Role and
// RoleBinding exist. It reads from informer caches, so that once they exist
// an admission costs no API call; it creates what is missing; and it merges
// concurrent calls for the same ServiceAccount, so that a burst of pods
// naming one new account creates each object once.
//
// It ensures the Role and RoleBinding only for an account it created or one
// its owner labelled token-projector.io/inject=enabled, and never changes an
// account it did not create. It never creates an account that a binding it
// did not write names as a subject (BoundError).
//
// Every path (the warm path, the shared ensures, the dry run, restore)
// learns whether an object exists by one rule, lookup: the informer cache,
// then the objects the cache does not show that this Ensurer knows exist
// (uncached: those it created a moment ago, and those of our name not
// labelled as ours but identical that it accepted).
type Ensurer struct {
	// Cache serves ServiceAccounts (metadata with the managed-by and
	// inject labels is enough) and the Roles and RoleBindings labelled as ours.
	Cache client.Reader
	// Live reads from the API server: an object whose create met
	// AlreadyExists, and the account a restore is for.
	Live client.Reader
	// Writer creates objects.
	Writer client.Writer
	// Bindings serves the RoleBindings (all namespaces) and
	// ClusterRoleBindings the webhook did not write (NotOurs), indexed by
	// IndexServiceAccountSubject: an account they name is never created
	// (see BoundError). Only a cold create reads it. Nil: only the live
	// check of the namespace's RoleBindings is made.
	Bindings client.Reader
	// Limiter, if set, is waited on before every API call (create or live
	// read); the warm path makes none. Nil is unlimited.
	Limiter Limiter
	// Timeout bounds one shared ensure, which runs detached from the
	// callers that wait for it; zero means DefaultTimeout.
	Timeout time.Duration
	// CacheWait bounds how long an object this Ensurer created counts as
	// present while the cache has not shown it, so that the callers right
	// after an ensure create nothing twice. It counts only until the
	// informer delivers any event of the object (CacheEventHandler): from
	// then on the cache is the truth, a deletion included. Zero: created
	// objects count only once cached.
	CacheWait time.Duration
	// ForeignMemory is how long a Role or RoleBinding of our name that is
	// not labelled as ours but is identical, accepted after a create met
	// it, counts as present; zero means DefaultForeignMemory, negative
	// remembers none.
	ForeignMemory time.Duration

	mu      sync.Mutex
	flights map[string]*flight
	// uncached are the objects the cache does not show that this Ensurer
	// knows exist: lookup's second source.
	uncached uncached
	// memo holds the warm path's answers until an event of their
	// namespace.
	memo warmMemo
	// now is the clock of uncached's expiries; nil is time.Now.
	now func() time.Time
}

// Ensure makes the ServiceAccount of serviceAccount exist in namespace,
// creating it if missing, and, if the account is eligible, its Role and
// RoleBinding. With dryRun it writes nothing and reports, from its caches,
// what it would do and any conflict it can see.
//
// Concurrent calls for one account share one ensure that runs under its own
// bounded context, not any caller's: each caller returns when it ends or when
// the caller's own ctx is done, whichever comes first, and a caller that goes
// away does not fail the others.
func (e *Ensurer) Ensure(ctx context.Context, namespace, serviceAccount string, dryRun bool) (Result, error) {
	if dryRun {
		return e.check(ctx, namespace, serviceAccount)
	}
	if res, ok := e.warm(ctx, namespace, serviceAccount); ok {
		return res, nil
	}
	return e.await(ctx, namespace+"/"+serviceAccount, func(ctx context.Context, progress func(string)) (Result, error) {
		return e.ensure(ctx, namespace, serviceAccount, progress)
	})
}

// Restore is Ensure for the reconciler: it ensures the Role and RoleBinding
// of an existing eligible account and never creates the account: deleting
// an account is how its owner revokes it. Before it grants, it reads the
// account from the API server, not the cache: a cache that has not seen a
// deletion yet must not make it grant RBAC to an account just deleted. A
// missing account is no error.
//
// When there is nothing to grant, it answers from memory, as the warm path
// does, with no API call: the Role and RoleBinding are both found by
// lookup. That is the usual case of an adopted identity (a labelled
// account whose owner made the Role and RoleBinding by hand, identical to
// ours): the cache never shows such objects, so the reconciler asks for a
// restore on every event of a pod that runs as the account, and each cost
// a live read and a token of the Limiter. The Ensurer remembers them for
// ForeignMemory once a create has met them, so they cost that once a
// ForeignMemory per identity.
func (e *Ensurer) Restore(ctx context.Context, namespace, serviceAccount string) (Result, error) {
	if res, ok := e.warm(ctx, namespace, serviceAccount); ok {
		return res, nil
	}
	// Its own flight: it answers differently from an admission's ensure.
	return e.await(ctx, namespace+"/"+serviceAccount+"/restore", func(ctx context.Context, progress func(string)) (Result, error) {
		return e.restore(ctx, namespace, serviceAccount, progress)
	})
}

// check is the dry run: what Ensure would do, by lookup, writing nothing.
func (e *Ensurer) check(ctx context.Context, namespace, serviceAccount string) (Result, error) {
	acct, src, err := e.lookupAccount(ctx, namespace, serviceAccount)
	switch {
	case err != nil:
		return Result{}, err
	case src == missing:
		cacheMisses.WithLabelValues(kindServiceAccount).Inc()
		bindings, err := e.indexedBindings(ctx, namespace, serviceAccount)
		switch {
		case err != nil:
			return Result{}, err
		case len(bindings) > 0:
			return Result{}, boundError(namespace, serviceAccount, bindings)
		}
		acct = accountManaged // what Ensure would create
	case !acct.eligible():
		return Result{}, nil
	}
	for _, w := range grants(namespace, serviceAccount) {
		src, err := e.lookupGrant(ctx, w)
		if err != nil {
			return Result{}, err
		}
		if src == missing {
			cacheMisses.WithLabelValues(w.kind).Inc()
		}
	}
	return acct.result(), nil
}

func (e *Ensurer) clock() time.Time {
	if e.now != nil {
		return e.now()
	}
	return time.Now()
}
