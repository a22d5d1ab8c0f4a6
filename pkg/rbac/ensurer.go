package rbac

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/token-projector/token-projector/pkg/mutate"
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
	// created (it carries the managed-by label): only such an account is
	// ever re-created by the reconciler.
	ManagedAccount bool
}

// DefaultTimeout bounds one shared ensure when Ensurer.Timeout is not set.
const DefaultTimeout = 10 * time.Second

// Ensurer makes sure a ServiceAccount and its token-creating Role and
// RoleBinding exist. It reads from informer caches, so that once they exist
// an admission costs no API call; it creates what is missing; and it merges
// concurrent calls for the same ServiceAccount, so that a burst of pods
// naming one new account creates each object once.
//
// It ensures the Role and RoleBinding only for an account it created or one
// its owner labelled token-projector.io/inject=enabled, and never changes an
// account it did not create.
type Ensurer struct {
	// Cache serves ServiceAccounts (metadata with the managed-by and
	// inject labels is enough) and the Roles and RoleBindings labelled as ours.
	Cache client.Reader
	// Live reads from the API server; used only to inspect an object whose
	// create failed with AlreadyExists.
	Live client.Reader
	// Writer creates objects.
	Writer client.Writer
	// Timeout bounds one shared ensure, which runs detached from the
	// callers that wait for it; zero means DefaultTimeout.
	Timeout time.Duration
	// CacheWait bounds how long an object this Ensurer created counts as
	// present while the caches have not shown it yet, so that the callers
	// right after an ensure create nothing twice. Nobody waits for it: the
	// callers of the ensure have their answer already.
	CacheWait time.Duration

	mu      sync.Mutex
	flights map[string]*flight
	// pending are the objects created here that the caches have not shown
	// yet. Each is dropped once the cache shows it, or after CacheWait:
	// from then on the cache alone is the truth, a deletion included. (A
	// finished ensure must not answer later callers itself: an object
	// deleted since, which the reconciler is restoring, would be reported
	// present and never restored.)
	pending map[pendingKey]struct{}
}

// pendingKey names one object the Ensurer created.
type pendingKey struct{ kind, namespace, name string }

func (e *Ensurer) setPending(kind string, o client.Object, on bool) {
	k := pendingKey{kind, o.GetNamespace(), o.GetName()}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case !on:
		delete(e.pending, k)
	case e.CacheWait > 0:
		if e.pending == nil {
			e.pending = map[pendingKey]struct{}{}
		}
		e.pending[k] = struct{}{}
	}
}

func (e *Ensurer) isPending(kind string, key client.ObjectKey) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.pending[pendingKey{kind, key.Namespace, key.Name}]
	return ok
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
	return e.await(ctx, namespace, serviceAccount, true)
}

// warm answers from the caches alone, on the caller's goroutine, when
// there is nothing to write: the account is cached and not eligible, or it
// is eligible and its Role and RoleBinding are cached as wanted. That is
// what a flight would find, and counts as it would; anything else (a miss,
// an error, a conflict, an object created here that the cache has not shown
// yet) is left to a flight, which reads again and acts. A flight per warm
// admission (a goroutine, a timer, a channel) was a tenth of its CPU.
func (e *Ensurer) warm(ctx context.Context, namespace, serviceAccount string) (Result, bool) {
	// The objects read here are compared and dropped, never changed and
	// never handed on, so they may share their maps and slices with the
	// cache: the deep copies were half the cost of these reads.
	m := serviceAccountMeta()
	if e.Cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: serviceAccount}, m, client.UnsafeDisableDeepCopy) != nil {
		return Result{}, false
	}
	acct := classify(m)
	if acct == accountForeign {
		ensures.WithLabelValues("ServiceAccount", "unlabelled").Inc()
		return Result{}, true
	}
	role, rb := &rbacv1.Role{}, &rbacv1.RoleBinding{}
	if e.Cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: Name(serviceAccount)}, role, client.UnsafeDisableDeepCopy) != nil ||
		!sameRole(role, Role(namespace, serviceAccount)) ||
		e.Cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: Name(serviceAccount)}, rb, client.UnsafeDisableDeepCopy) != nil ||
		!sameRoleBinding(rb, RoleBinding(namespace, serviceAccount)) {
		return Result{}, false
	}
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding"} {
		ensures.WithLabelValues(kind, "cached").Inc()
	}
	return acct.result(), true
}

// Restore is Ensure for the reconciler: it ensures the Role and RoleBinding
// of an existing eligible account, and re-creates a missing ServiceAccount
// only with createAccount (the account is one the webhook created: deleting
// any other account is how its owner revokes it).
func (e *Ensurer) Restore(ctx context.Context, namespace, serviceAccount string, createAccount bool) (Result, error) {
	return e.await(ctx, namespace, serviceAccount, createAccount)
}

// flight is one shared ensure.
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
	if doing == "" {
		doing = "reading from the cache"
	}
	return fmt.Errorf("stopped waiting, still %s: %w", doing, cause)
}

// await joins the flight of the account, starting one if none runs, and
// waits for it or for ctx.
func (e *Ensurer) await(ctx context.Context, namespace, serviceAccount string, createAccount bool) (Result, error) {
	key := namespace + "/" + serviceAccount
	if !createAccount {
		key += "/existing" // a restore that may not create the account answers differently
	}
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
		go e.fly(context.WithoutCancel(ctx), key, f, namespace, serviceAccount, createAccount)
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

func (e *Ensurer) fly(ctx context.Context, key string, f *flight, namespace, serviceAccount string, createAccount bool) {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f.res, f.err = e.ensure(ctx, namespace, serviceAccount, createAccount, f.progress)
	// Forgotten before it is answered: a caller that comes later starts an
	// ensure of its own, which reads the caches (and the pending objects).
	e.mu.Lock()
	if e.flights[key] == f {
		delete(e.flights, key)
	}
	e.mu.Unlock()
	close(f.done)
	e.awaitCache(ctx, f.res.Created)
}

// account is whose an existing ServiceAccount is.
type account int

const (
	accountMissing  account = iota
	accountManaged          // created by the webhook
	accountLabelled         // its owner labelled it token-projector.io/inject=enabled
	accountForeign          // anyone else's: left alone, no RBAC
)

func classify(o metav1.Object) account {
	switch {
	case IsManaged(o):
		return accountManaged
	case o.GetLabels()[mutate.LabelInject] == mutate.InjectEnabled:
		return accountLabelled
	}
	return accountForeign
}

func (a account) result() Result {
	return Result{RBAC: a == accountManaged || a == accountLabelled, ManagedAccount: a == accountManaged}
}

func (e *Ensurer) ensure(ctx context.Context, namespace, serviceAccount string, createAccount bool, progress func(string)) (Result, error) {
	steps := e.steps(namespace, serviceAccount)
	sa, role, rb := steps[0], steps[1], steps[2]
	acct, err := e.cachedAccount(ctx, namespace, serviceAccount)
	if err != nil {
		ensures.WithLabelValues(sa.kind, "error").Inc()
		return Result{}, err
	}
	var created []Created
	switch {
	case acct == accountMissing && !createAccount:
		ensures.WithLabelValues(sa.kind, "missing").Inc()
		return Result{}, nil
	case acct == accountMissing:
		// The account and its Role at once: neither needs the other. The
		// RoleBinding waits for the Role, which kube-apiserver's RBAC
		// escalation check reads.
		var roleObj client.Object
		var roleErr error
		var wg sync.WaitGroup
		wg.Go(func() { roleObj, roleErr = e.ensureOne(ctx, role, progress) })
		var saObj client.Object
		saObj, acct, err = e.createAccount(ctx, sa, progress)
		wg.Wait()
		created = appendCreated(appendCreated(created, sa.kind, saObj), role.kind, roleObj)
		if err = errors.Join(err, roleErr); err != nil {
			return Result{Created: created}, err
		}
		if acct == accountForeign {
			// The account appeared a moment ago and is not ours: no
			// RoleBinding, so the Role, if just created, grants nothing.
			return Result{Created: created}, nil
		}
	case acct == accountForeign:
		ensures.WithLabelValues(sa.kind, "unlabelled").Inc()
		return Result{}, nil
	default:
		ensures.WithLabelValues(sa.kind, "cached").Inc()
		obj, err := e.ensureOne(ctx, role, progress)
		created = appendCreated(created, role.kind, obj)
		if err != nil {
			return Result{Created: created}, err
		}
	}
	obj, err := e.ensureOne(ctx, rb, progress)
	created = appendCreated(created, rb.kind, obj)
	res := acct.result()
	res.Created = created
	if err != nil {
		return Result{Created: created}, err
	}
	return res, nil
}

func appendCreated(created []Created, kind string, obj client.Object) []Created {
	if obj == nil {
		return created
	}
	return append(created, Created{Kind: kind, Object: obj})
}

// cachedAccount reads the ServiceAccount from the cache and says whose it is.
func (e *Ensurer) cachedAccount(ctx context.Context, namespace, serviceAccount string) (account, error) {
	m := serviceAccountMeta()
	err := e.Cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: serviceAccount}, m)
	switch {
	case apierrors.IsNotFound(err) && e.isPending("ServiceAccount", client.ObjectKey{Namespace: namespace, Name: serviceAccount}):
		return accountManaged, nil // created here a moment ago
	case apierrors.IsNotFound(err):
		cacheMisses.WithLabelValues("ServiceAccount").Inc()
		return accountMissing, nil
	case err != nil:
		return accountMissing, fmt.Errorf("reading ServiceAccount %s/%s from cache: %w", namespace, serviceAccount, err)
	}
	return classify(m), nil
}

// createAccount creates the ServiceAccount; AlreadyExists (another replica,
// a cache that has not caught up, or its owner a moment ago) is read live to
// learn whose it is. It returns the object if this call created it.
func (e *Ensurer) createAccount(ctx context.Context, s step, progress func(string)) (client.Object, account, error) {
	obj, err := e.create(ctx, s, progress)
	var existing *existingError
	switch {
	case err == nil:
		ensures.WithLabelValues(s.kind, "created").Inc()
		return obj, accountManaged, nil
	case errors.As(err, &existing):
		acct := classify(existing.obj)
		ensures.WithLabelValues(s.kind, map[account]string{accountManaged: "existing", accountLabelled: "existing", accountForeign: "unlabelled"}[acct]).Inc()
		return nil, acct, nil
	default:
		ensures.WithLabelValues(s.kind, "error").Inc()
		return nil, accountMissing, err
	}
}

// ensureOne ensures a Role or RoleBinding and counts how: cached, created,
// existing (a create met an acceptable object), conflict or error. It
// returns the object if this call created it.
func (e *Ensurer) ensureOne(ctx context.Context, s step, progress func(string)) (client.Object, error) {
	ok, err := s.inCache(ctx)
	switch {
	case err != nil:
		ensures.WithLabelValues(s.kind, resultOf(err)).Inc()
		return nil, err
	case ok:
		ensures.WithLabelValues(s.kind, "cached").Inc()
		return nil, nil
	}
	obj, err := e.create(ctx, s, progress)
	var existing *existingError
	switch {
	case errors.As(err, &existing):
		if err := s.accept(existing.obj); err != nil {
			ensures.WithLabelValues(s.kind, resultOf(err)).Inc()
			return nil, err
		}
		ensures.WithLabelValues(s.kind, "existing").Inc()
		return nil, nil
	case err != nil:
		ensures.WithLabelValues(s.kind, resultOf(err)).Inc()
		return nil, err
	}
	ensures.WithLabelValues(s.kind, "created").Inc()
	return obj, nil
}

func resultOf(err error) string {
	if IsConflict(err) {
		return "conflict"
	}
	return "error"
}

// check is the dry run: what Ensure would do, from the caches, writing nothing.
func (e *Ensurer) check(ctx context.Context, namespace, serviceAccount string) (Result, error) {
	acct, err := e.cachedAccount(ctx, namespace, serviceAccount)
	switch {
	case err != nil:
		return Result{}, err
	case acct == accountForeign:
		return Result{}, nil
	case acct == accountMissing:
		acct = accountManaged // what Ensure would create
	}
	steps := e.steps(namespace, serviceAccount)
	for _, step := range steps[1:] {
		if _, err := step.inCache(ctx); err != nil {
			return Result{}, err
		}
	}
	return acct.result(), nil
}

// step is one object to ensure: how to find it in the cache and how to tell
// whether an existing one is acceptable.
type step struct {
	kind string
	obj  client.Object
	// inCache reports whether an acceptable object is cached, or a conflict.
	inCache func(ctx context.Context) (bool, error)
	// accept reports whether an existing object read live is acceptable.
	accept func(existing client.Object) error
	// fresh is an empty object of the kind, to read into.
	fresh func() client.Object
}

// steps are the ServiceAccount, the Role and the RoleBinding, in that order.
func (e *Ensurer) steps(namespace, serviceAccount string) [3]step {
	sa := ServiceAccount(namespace, serviceAccount)
	role := Role(namespace, serviceAccount)
	rb := RoleBinding(namespace, serviceAccount)
	return [3]step{
		{
			kind: "ServiceAccount", obj: sa,
			// Whose it is decides; cachedAccount and createAccount read it.
			accept: func(client.Object) error { return nil },
			fresh:  func() client.Object { return serviceAccountMeta() },
		},
		{
			kind: "Role", obj: role,
			inCache: func(ctx context.Context) (bool, error) {
				return e.cached(ctx, "Role", client.ObjectKeyFromObject(role), &rbacv1.Role{}, func(o client.Object) error { return acceptRole(o, role) })
			},
			accept: func(o client.Object) error { return acceptRole(o, role) },
			fresh:  func() client.Object { return &rbacv1.Role{} },
		},
		{
			kind: "RoleBinding", obj: rb,
			inCache: func(ctx context.Context) (bool, error) {
				return e.cached(ctx, "RoleBinding", client.ObjectKeyFromObject(rb), &rbacv1.RoleBinding{}, func(o client.Object) error { return acceptRoleBinding(o, rb) })
			},
			accept: func(o client.Object) error { return acceptRoleBinding(o, rb) },
			fresh:  func() client.Object { return &rbacv1.RoleBinding{} },
		},
	}
}

func serviceAccountMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	return m
}

func (e *Ensurer) cached(ctx context.Context, kind string, key client.ObjectKey, into client.Object, accept func(client.Object) error) (bool, error) {
	err := e.Cache.Get(ctx, key, into)
	switch {
	case apierrors.IsNotFound(err) && e.isPending(kind, key):
		return true, nil // created here a moment ago, exactly as wanted
	case apierrors.IsNotFound(err):
		cacheMisses.WithLabelValues(kind).Inc()
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading %s %s from cache: %w", kind, key, err)
	}
	if err := accept(into); err != nil {
		return false, err
	}
	return true, nil
}

// existingError is a create that met AlreadyExists, with the existing
// object as read live.
type existingError struct{ obj client.Object }

func (e *existingError) Error() string { return "already exists" }

// create creates the step's object and returns it. AlreadyExists (another
// replica, or a cache that has not caught up) is read live and returned as
// an *existingError for the caller to judge.
func (e *Ensurer) create(ctx context.Context, s step, progress func(string)) (client.Object, error) {
	log := logf.FromContext(ctx)
	name := s.obj.GetNamespace() + "/" + s.obj.GetName()
	progress("creating " + s.kind + " " + name)
	obj := s.obj.DeepCopyObject().(client.Object)
	err := e.Writer.Create(ctx, obj)
	switch {
	case err == nil:
		apiWrites.WithLabelValues(s.kind, "created").Inc()
		log.V(1).Info("Created object", "kind", s.kind, "namespace", s.obj.GetNamespace(), "name", s.obj.GetName())
		e.setPending(s.kind, obj, true)
		return obj, nil
	case apierrors.IsAlreadyExists(err):
		apiWrites.WithLabelValues(s.kind, "exists").Inc()
		existing := s.fresh()
		apiReads.WithLabelValues(s.kind).Inc()
		progress("reading existing " + s.kind + " " + name)
		if err := e.Live.Get(ctx, client.ObjectKeyFromObject(s.obj), existing); err != nil {
			return nil, fmt.Errorf("reading existing %s %s: %w", s.kind, name, err)
		}
		return nil, &existingError{obj: existing}
	default:
		apiWrites.WithLabelValues(s.kind, "error").Inc()
		return nil, fmt.Errorf("creating %s %s: %w", s.kind, name, err)
	}
}

// awaitCache drops each created object from the pending ones once the
// cache holds it, or after CacheWait. Running out of time is harmless: the
// next admission would then meet AlreadyExists.
func (e *Ensurer) awaitCache(ctx context.Context, created []Created) {
	defer func() {
		for _, c := range created {
			e.setPending(c.Kind, c.Object, false)
		}
	}()
	if e.CacheWait <= 0 || len(created) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, e.CacheWait)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for _, c := range created {
		into := c.Object.DeepCopyObject().(client.Object)
		if _, ok := c.Object.(*corev1.ServiceAccount); ok {
			into = serviceAccountMeta()
		}
		for e.Cache.Get(ctx, client.ObjectKeyFromObject(c.Object), into) != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		e.setPending(c.Kind, c.Object, false)
	}
}

func acceptRole(o client.Object, want *rbacv1.Role) error {
	have := o.(*rbacv1.Role)
	if sameRole(have, want) {
		return nil
	}
	return &ConflictError{Kind: "Role", Namespace: want.Namespace, Name: want.Name, Reason: conflictReason(have)}
}

func acceptRoleBinding(o client.Object, want *rbacv1.RoleBinding) error {
	have := o.(*rbacv1.RoleBinding)
	if sameRoleBinding(have, want) {
		return nil
	}
	return &ConflictError{Kind: "RoleBinding", Namespace: want.Namespace, Name: want.Name, Reason: conflictReason(have)}
}

func conflictReason(have client.Object) string {
	if IsManaged(have) {
		return "was changed since token-projector created it"
	}
	return "is not managed by token-projector and differs from what it would create"
}
