package rbac

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
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

// Ensurer makes sure a ServiceAccount and its token-creating Role and
// RoleBinding exist. It reads from informer caches, so that once they exist
// an admission costs no API call; it creates what is missing; and it merges
// concurrent calls for the same ServiceAccount, so that a burst of pods
// naming one new account creates each object once.
type Ensurer struct {
	// Cache serves ServiceAccounts (metadata is enough) and the Roles and
	// RoleBindings labelled as ours.
	Cache client.Reader
	// Live reads from the API server; used only to inspect an object whose
	// create failed with AlreadyExists.
	Live client.Reader
	// Writer creates objects.
	Writer client.Writer
	// CacheWait bounds how long a create waits to see its object in the cache,
	// so that the next admission finds it there instead of creating again.
	CacheWait time.Duration

	group singleflight.Group
}

// Ensure makes the ServiceAccount, Role and RoleBinding of serviceAccount
// exist in namespace, and returns what it created. With dryRun it writes
// nothing and only reports a conflict it can see in its caches.
func (e *Ensurer) Ensure(ctx context.Context, namespace, serviceAccount string, dryRun bool) ([]Created, error) {
	if dryRun {
		return nil, e.check(ctx, namespace, serviceAccount)
	}
	// Waiters share the leader's error; a leader cancelled by its own request
	// context fails the waiters too, and the next admission retries. Only the
	// leader reports what was created, so each creation is told once.
	leader := false
	v, err, _ := e.group.Do(namespace+"/"+serviceAccount, func() (any, error) {
		leader = true
		return e.ensure(ctx, namespace, serviceAccount)
	})
	if !leader {
		return nil, err
	}
	created, _ := v.([]Created)
	return created, err
}

func (e *Ensurer) ensure(ctx context.Context, namespace, serviceAccount string) ([]Created, error) {
	var created []Created
	for _, step := range e.steps(namespace, serviceAccount) {
		obj, result, err := e.ensureOne(ctx, step)
		ensures.WithLabelValues(step.kind, result).Inc()
		if err != nil {
			return created, err
		}
		if obj != nil {
			created = append(created, Created{Kind: step.kind, Object: obj})
		}
	}
	return created, nil
}

// ensureOne ensures one object and says how: cached, created, existing (a
// create met an acceptable object), conflict or error.
func (e *Ensurer) ensureOne(ctx context.Context, s step) (client.Object, string, error) {
	ok, err := s.inCache(ctx)
	switch {
	case err != nil:
		return nil, resultOf(err), err
	case ok:
		return nil, "cached", nil
	}
	obj, err := e.create(ctx, s)
	switch {
	case err != nil:
		return nil, resultOf(err), err
	case obj == nil:
		return nil, "existing", nil
	}
	return obj, "created", nil
}

func resultOf(err error) string {
	if IsConflict(err) {
		return "conflict"
	}
	return "error"
}

func (e *Ensurer) check(ctx context.Context, namespace, serviceAccount string) error {
	for _, step := range e.steps(namespace, serviceAccount) {
		if _, err := step.inCache(ctx); err != nil {
			return err
		}
	}
	return nil
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

func (e *Ensurer) steps(namespace, serviceAccount string) []step {
	sa := ServiceAccount(namespace, serviceAccount)
	role := Role(namespace, serviceAccount)
	rb := RoleBinding(namespace, serviceAccount)
	return []step{
		{
			kind: "ServiceAccount", obj: sa,
			// Any ServiceAccount of the name will do: it carries no rights of its own.
			inCache: func(ctx context.Context) (bool, error) {
				return e.cached(ctx, "ServiceAccount", client.ObjectKeyFromObject(sa), serviceAccountMeta(), func(client.Object) error { return nil })
			},
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

// create creates the step's object. AlreadyExists (another replica, or a
// cache that has not caught up) is success only if the existing object is
// acceptable. It returns the object if this call created it.
func (e *Ensurer) create(ctx context.Context, s step) (client.Object, error) {
	log := logf.FromContext(ctx)
	obj := s.obj.DeepCopyObject().(client.Object)
	err := e.Writer.Create(ctx, obj)
	switch {
	case err == nil:
		apiWrites.WithLabelValues(s.kind, "created").Inc()
		log.V(1).Info("Created object", "kind", s.kind, "namespace", s.obj.GetNamespace(), "name", s.obj.GetName())
		e.awaitCache(ctx, s)
		return obj, nil
	case apierrors.IsAlreadyExists(err):
		apiWrites.WithLabelValues(s.kind, "exists").Inc()
		existing := s.fresh()
		apiReads.WithLabelValues(s.kind).Inc()
		if err := e.Live.Get(ctx, client.ObjectKeyFromObject(s.obj), existing); err != nil {
			return nil, fmt.Errorf("reading existing %s %s/%s: %w", s.kind, s.obj.GetNamespace(), s.obj.GetName(), err)
		}
		return nil, s.accept(existing)
	default:
		apiWrites.WithLabelValues(s.kind, "error").Inc()
		return nil, fmt.Errorf("creating %s %s/%s: %w", s.kind, s.obj.GetNamespace(), s.obj.GetName(), err)
	}
}

// awaitCache waits, briefly, until the cache holds what we just created, so
// that the next admission for this ServiceAccount finds it there. Running out
// of time is harmless: that admission would then meet AlreadyExists.
func (e *Ensurer) awaitCache(ctx context.Context, s step) {
	if e.CacheWait <= 0 {
		return
	}
	_ = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, e.CacheWait, true, func(ctx context.Context) (bool, error) {
		err := e.Cache.Get(ctx, client.ObjectKeyFromObject(s.obj), s.fresh())
		return err == nil, nil
	})
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
