// Package reconcile keeps the identities the webhook ensures (a
// ServiceAccount, and the Role and RoleBinding <sa>-create-token) in step
// with the pods and workloads that use them, after admission:
//
//   - Restore (restore.go): while a pod the webhook injected runs as an
//     account in an opted-in namespace, and that account exists and is
//     eligible (the webhook created it, or its owner labelled it
//     token-projector.io/inject=enabled), the account's Role and RoleBinding
//     exist. One deleted by hand, or never created because the webhook was
//     killed between two creates, comes back through the same Ensurer the
//     webhook uses. The ServiceAccount itself never comes back: deleting it
//     is how its owner revokes it, and removing its inject label stops the
//     restore of an account the webhook did not create.
//   - Garbage collection (collect.go; off unless TTL > 0): an identity that
//     no pod and no workload template has named for TTL is deleted, but only
//     the objects carrying the webhook's managed-by label, each with UID and
//     resourceVersion preconditions, after a last live look for pods and
//     workloads that name it, and in two steps that every replica's
//     admissions can interrupt.
//
// Provenance comes only from objects on the API server that the webhook
// wrote (the managed-by label on the ServiceAccount, Role and RoleBinding)
// or that an owner or admin set (an account's inject label, a namespace's
// opt-in label): never from a pod's annotations or labels, which any pod
// author can set. A pod only tells whether an identity is in use.
//
// With several replicas, only the elected leader reconciles (pkg/server
// turns on controller-runtime's leader election); every replica admits.
//
// The unit of work is one identity, a reconcile.Request whose Name is the
// ServiceAccount's. Everything is read from informer caches: pods are cached
// as their name and account only, workloads as their template's account only.
package reconcile

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/rbac"
)

// Ensurer restores a ServiceAccount's RBAC; *rbac.Ensurer is the real one,
// shared with the admission handler so that concurrent calls merge. Restore
// never creates the ServiceAccount, and ensures the Role and RoleBinding
// only for an account that exists (read from the API server) and that the
// webhook created or its owner labelled.
type Ensurer interface {
	Restore(ctx context.Context, namespace, serviceAccount string) (rbac.Result, error)
}

// DefaultCollectGrace is Reconciler.CollectGrace when it is not set.
const DefaultCollectGrace = 2 * time.Minute

// Reconciler restores and garbage-collects identities.
type Reconciler struct {
	// Cache serves trimmed pods and workloads (see CacheByObject), namespace
	// and ServiceAccount metadata, and the managed Roles and RoleBindings.
	Cache client.Reader
	// Live reads from the API server: the last look for pods before a delete.
	Live client.Reader
	// Writer deletes unused managed objects.
	Writer client.Writer
	// Ensurer restores missing objects.
	Ensurer Ensurer
	// TTL is how long an identity must go unused before it is deleted; zero
	// disables garbage collection (restoring always runs).
	TTL time.Duration
	// CollectGrace is how long collection waits between deleting an unused
	// identity's RoleBinding and deleting the rest (see collect.go): longer
	// than a pod admitted by any replica can take to be stored. Zero means
	// DefaultCollectGrace.
	CollectGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	// started is when this replica began reconciling (its election): an
	// identity counts as used then, because what happened before is not
	// known here.
	started time.Time
	// lastUsed is, per identity, the last time a pod or workload event
	// named it. Only the leader's watches feed it, and an identity is
	// forgotten once it has no managed object left, so that it holds at
	// most one entry per managed identity.
	lastUsed map[types.NamespacedName]time.Time
	// condemned is, per identity, when collection deleted its RoleBinding.
	condemned map[types.NamespacedName]time.Time
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) grace() time.Duration {
	if r.CollectGrace > 0 {
		return r.CollectGrace
	}
	return DefaultCollectGrace
}

// reconcileTimeout bounds one reconcile, so that an API server that hangs
// does not hold a worker: the request is retried with backoff.
const reconcileTimeout = 30 * time.Second

// Reconcile restores or collects one identity.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	id := req.NamespacedName

	pods, err := r.podUsers(ctx, id)
	if err != nil {
		return ctrl.Result{}, err
	}
	if pods > 0 {
		if err := r.restore(ctx, id); err != nil {
			return ctrl.Result{}, err
		}
	}
	workloads, err := r.workloadUsers(ctx, id)
	if err != nil {
		return ctrl.Result{}, err
	}
	if pods+workloads > 0 {
		r.touch(id)
		return ctrl.Result{}, nil
	}
	if r.TTL <= 0 {
		r.forget(id)
		return ctrl.Result{}, nil
	}
	return r.collect(ctx, id)
}

// podUsers counts the cached pods that run as the account. The cache holds
// only pods labelled as injected; the label tells that the pod is one the
// webhook serves, never what the webhook ensured for it.
func (r *Reconciler) podUsers(ctx context.Context, id types.NamespacedName) (int, error) {
	var pods corev1.PodList
	if err := r.Cache.List(ctx, &pods, client.InNamespace(id.Namespace), client.MatchingFields{indexPodAccount: id.Name}); err != nil {
		return 0, fmt.Errorf("listing pods of %s from cache: %w", id, err)
	}
	return len(pods.Items), nil
}

func (r *Reconciler) workloadUsers(ctx context.Context, id types.NamespacedName) (int, error) {
	if r.TTL <= 0 {
		return 0, nil // workloads are watched for garbage collection only
	}
	n := 0
	for _, k := range workloadKinds {
		list := k.list()
		if err := r.Cache.List(ctx, list, client.InNamespace(id.Namespace), client.MatchingFields{indexTemplateAccount: id.Name}); err != nil {
			return 0, fmt.Errorf("listing %s of %s from cache: %w", k.kind, id, err)
		}
		n += meta.LenList(list)
	}
	return n, nil
}
