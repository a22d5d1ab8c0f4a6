package rbac

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What the shared ensures do: the steps of an admission's ensure and of a
// restore, each object counted in token_projector_ensure_total by how it
// was found or made.

// ensure is an admission's: the account, created if missing, then, if it
// is eligible, its Role and RoleBinding.
func (e *Ensurer) ensure(ctx context.Context, namespace, serviceAccount string, progress func(string)) (Result, error) {
	acct, src, err := e.lookupAccount(ctx, namespace, serviceAccount)
	switch {
	case err != nil:
		ensures.WithLabelValues(kindServiceAccount, "error").Inc()
		return Result{}, err
	case src == missing:
		cacheMisses.WithLabelValues(kindServiceAccount).Inc()
		return e.ensureNew(ctx, namespace, serviceAccount, progress)
	case !acct.eligible():
		ensures.WithLabelValues(kindServiceAccount, "unlabelled").Inc()
		return Result{}, nil
	}
	g := grants(namespace, serviceAccount)
	if src == cached && e.grantMissing(ctx, g[:]) {
		return e.grantFresh(ctx, namespace, serviceAccount, progress)
	}
	ensures.WithLabelValues(kindServiceAccount, src.result()).Inc()
	return e.grant(ctx, acct, nil, progress, g[:]...)
}

// grantMissing reports whether lookup finds no Role or no RoleBinding of
// g; a conflict is left to grant, which reports it.
func (e *Ensurer) grantMissing(ctx context.Context, g []wanted) bool {
	for _, w := range g {
		if src, err := e.lookupGrant(ctx, w); err == nil && src == missing {
			return true
		}
	}
	return false
}

// grantFresh is ensure's for an eligible account the cache shows whose
// Role or RoleBinding is missing: it reads the account from the API server
// before granting, as restore does, for a cache that has not yet seen the
// account's label removed, or its deletion, must not make the webhook grant
// RBAC to it. One that is gone is missing, as a fresh cache would have
// said: ensureNew. (An account created here a moment ago is not read: the
// informer's first event of it, a deletion included, ends what this
// Ensurer knows.)
func (e *Ensurer) grantFresh(ctx context.Context, namespace, serviceAccount string, progress func(string)) (Result, error) {
	w := accountOf(namespace, serviceAccount)
	acct, err := e.readAccount(ctx, w, "reading "+w.String()+" from the API server before granting it token RBAC", progress)
	switch {
	case err != nil:
		return Result{}, err
	case acct == accountMissing:
		return e.ensureNew(ctx, namespace, serviceAccount, progress)
	}
	return e.grantRead(ctx, namespace, serviceAccount, acct, progress)
}

// grantRead ensures the Role and RoleBinding of an account read from the
// API server (readAccount) if it is eligible, counting it as read: the one
// ending of grantFresh, checkBindings and restore.
func (e *Ensurer) grantRead(ctx context.Context, namespace, serviceAccount string, acct account, progress func(string)) (Result, error) {
	ensures.WithLabelValues(kindServiceAccount, acct.existing()).Inc()
	if !acct.eligible() {
		return Result{}, nil
	}
	g := grants(namespace, serviceAccount)
	return e.grant(ctx, acct, nil, progress, g[:]...)
}

// readAccount reads w, an account, from the API server: whose it is, or
// accountMissing.
func (e *Ensurer) readAccount(ctx context.Context, w wanted, doing string, progress func(string)) (account, error) {
	obj, err := e.read(ctx, w, doing, progress)
	switch {
	case err != nil:
		ensures.WithLabelValues(w.kind, "error").Inc()
		return accountMissing, err
	case obj == nil:
		return accountMissing, nil
	}
	return classify(obj), nil
}

// checkBindings comes before an account is created: the bindings not ours
// that name it, from the Bindings cache, else from the one live check
// (liveBindings). If any do, the account is read from the API server: one
// that exists after all (created a moment ago; the cache has not shown
// it) is judged as any existing account is, and done is set; one that
// does not is a *BoundError. Without bindings, done is false: create it.
func (e *Ensurer) checkBindings(ctx context.Context, namespace, serviceAccount string, progress func(string)) (res Result, done bool, err error) {
	bindings, err := e.indexedBindings(ctx, namespace, serviceAccount)
	if err == nil && len(bindings) == 0 {
		bindings, err = e.liveBindings(ctx, namespace, serviceAccount, progress)
	}
	switch {
	case err != nil:
		ensures.WithLabelValues(kindServiceAccount, "error").Inc()
		return Result{}, true, err
	case len(bindings) == 0:
		return Result{}, false, nil
	}
	w := accountOf(namespace, serviceAccount)
	acct, err := e.readAccount(ctx, w, "reading "+w.String()+", which bindings name, from the API server", progress)
	switch {
	case err != nil:
		return Result{}, true, err
	case acct == accountMissing:
		ensures.WithLabelValues(w.kind, "bound").Inc()
		return Result{}, true, boundError(namespace, serviceAccount, bindings)
	}
	res, err = e.grantRead(ctx, namespace, serviceAccount, acct, progress)
	return res, true, err
}

// ensureNew creates an account the cache does not show, unless bindings
// not ours name it (checkBindings), and ensures its Role at once: neither
// needs the other. Whose the account turns out to be
// (AlreadyExists: another replica, a cache that has not caught up, or its
// owner a moment ago) alone decides whether the Role's outcome counts: for
// an account that is not eligible the answer is "no RBAC", whatever the
// Role, exactly as with a cache that had shown the account, so that the
// answer does not depend on cache lag. (A Role created meanwhile grants
// nothing without its RoleBinding.)
func (e *Ensurer) ensureNew(ctx context.Context, namespace, serviceAccount string, progress func(string)) (Result, error) {
	if res, done, err := e.checkBindings(ctx, namespace, serviceAccount, progress); done {
		return res, err
	}
	g := grants(namespace, serviceAccount)
	var roleObj client.Object
	var roleErr error
	var rolePanic any
	var wg sync.WaitGroup
	wg.Go(func() {
		// Nothing recovers a panic on this goroutine: it is handed to the
		// flight's, where safely turns it into this ensure's error.
		defer func() { rolePanic = recover() }()
		roleObj, roleErr = e.ensureOne(ctx, g[0], progress)
	})
	saObj, acct, err := e.createAccount(ctx, accountOf(namespace, serviceAccount), progress)
	wg.Wait()
	if rolePanic != nil {
		panic(rolePanic)
	}
	created := appendCreated(appendCreated(nil, kindServiceAccount, saObj), kindRole, roleObj)
	switch {
	case err != nil:
		if roleErr != nil {
			// Not wrapped: whose the account is is unknown, so a
			// conflict of the Role must not decide the answer.
			err = fmt.Errorf("%w (the Role: %s)", err, roleErr.Error())
		}
		return Result{Created: created}, err
	case !acct.eligible():
		return Result{Created: created}, nil
	case roleErr != nil:
		return Result{Created: created}, roleErr
	}
	return e.grant(ctx, acct, created, progress, g[1])
}

// restore is the reconciler's: the account, read live and never created,
// then, if it exists and is eligible, its Role and RoleBinding.
func (e *Ensurer) restore(ctx context.Context, namespace, serviceAccount string, progress func(string)) (Result, error) {
	w := accountOf(namespace, serviceAccount)
	acct, err := e.readAccount(ctx, w, "reading "+w.String()+" from the API server", progress)
	if err != nil {
		return Result{}, err
	}
	return e.grantRead(ctx, namespace, serviceAccount, acct, progress)
}

// grant ensures, in order, the Role and RoleBinding of an eligible account
// (or what is left of them), stopping at the first that fails.
func (e *Ensurer) grant(ctx context.Context, acct account, created []Created, progress func(string), objs ...wanted) (Result, error) {
	for _, w := range objs {
		obj, err := e.ensureOne(ctx, w, progress)
		created = appendCreated(created, w.kind, obj)
		if err != nil {
			return Result{Created: created}, err
		}
	}
	res := acct.result()
	res.Created = created
	return res, nil
}

func appendCreated(created []Created, kind string, obj client.Object) []Created {
	if obj == nil {
		return created
	}
	return append(created, Created{Kind: kind, Object: obj})
}

// createAccount creates the account; one that exists already (read live)
// is judged by whose it is. It returns the object if this call created it.
func (e *Ensurer) createAccount(ctx context.Context, w wanted, progress func(string)) (client.Object, account, error) {
	obj, err := e.create(ctx, w, progress)
	var existing *existingError
	switch {
	case err == nil:
		ensures.WithLabelValues(w.kind, "created").Inc()
		return obj, accountManaged, nil
	case errors.As(err, &existing):
		acct := classify(existing.obj)
		ensures.WithLabelValues(w.kind, acct.existing()).Inc()
		return nil, acct, nil
	default:
		ensures.WithLabelValues(w.kind, "error").Inc()
		return nil, accountMissing, err
	}
}

// ensureOne ensures a Role or RoleBinding: found by lookup, or created;
// one that exists already (read live) is accepted if it grants exactly
// what ours would, and remembered if it is not labelled as ours (the cache
// never shows it). It returns the object if this call created it.
func (e *Ensurer) ensureOne(ctx context.Context, w wanted, progress func(string)) (client.Object, error) {
	src, err := e.lookupGrant(ctx, w)
	switch {
	case err != nil:
		ensures.WithLabelValues(w.kind, resultOf(err)).Inc()
		return nil, err
	case src != missing:
		ensures.WithLabelValues(w.kind, src.result()).Inc()
		return nil, nil
	}
	cacheMisses.WithLabelValues(w.kind).Inc()
	obj, err := e.create(ctx, w, progress)
	var existing *existingError
	switch {
	case errors.As(err, &existing):
		if err := w.accept(existing.obj); err != nil {
			ensures.WithLabelValues(w.kind, resultOf(err)).Inc()
			return nil, err
		}
		if !IsManaged(existing.obj) {
			e.remember(ctx, w, existing.obj)
		}
		ensures.WithLabelValues(w.kind, "existing").Inc()
		return nil, nil
	case err != nil:
		ensures.WithLabelValues(w.kind, resultOf(err)).Inc()
		return nil, err
	}
	ensures.WithLabelValues(w.kind, "created").Inc()
	return obj, nil
}

func resultOf(err error) string {
	if IsConflict(err) {
		return "conflict"
	}
	return "error"
}
