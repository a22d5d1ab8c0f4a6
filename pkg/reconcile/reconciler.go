// Package reconcile keeps the identities the webhook ensures (a
// ServiceAccount, and the Role and RoleBinding <sa>-create-token) in step
// with the pods and workloads that use them, after admission:
//
//   - Restore: while a pod the webhook admitted with RBAC (its status
//     annotation says so) runs as an account in an opted-in namespace, that
//     account's Role and RoleBinding exist. A managed object deleted by hand,
//     or never created because the webhook was killed between two creates,
//     comes back through the same Ensurer the webhook uses (cache first,
//     create only what is missing, never overwrite). The ServiceAccount
//     itself is re-created only if a pod's status says the webhook created
//     it (managedServiceAccount): deleting an account the webhook did not
//     create is how its owner revokes it, and removing its
//     token-projector.io/inject=enabled label stops the restore too.
//   - Garbage collection (off unless TTL > 0): an identity that no pod and no
//     workload template has named for TTL is deleted, but only the objects
//     carrying the webhook's managed-by label, each with UID and
//     resourceVersion preconditions, after a last live look for pods and
//     workloads that name it.
//
// With several replicas, only the elected leader reconciles (pkg/server
// turns on controller-runtime's leader election); every replica admits.
//
// The unit of work is one identity, a reconcile.Request whose Name is the
// ServiceAccount's. Everything is read from informer caches: pods are cached
// as their name, account and status annotation only, workloads as their
// template's account only.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// Ensurer restores a ServiceAccount's RBAC; *rbac.Ensurer is the real one,
// shared with the admission handler so that concurrent calls merge. It
// ensures RBAC only for an account the webhook created or one its owner
// labelled, and never re-creates a missing account.
type Ensurer interface {
	Restore(ctx context.Context, namespace, serviceAccount string) (rbac.Result, error)
}

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
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	// started is when the reconciler started: an identity counts as used
	// then, because what happened before is not known.
	started time.Time
	// lastUsed is, per identity, the last time a pod or workload event or an
	// admission named it.
	lastUsed map[types.NamespacedName]time.Time
}

// Touch records that an identity is in use now. The admission path calls it
// before ensuring, so that an identity a pod is being admitted for is never
// collected while that pod is on its way to the API server.
func (r *Reconciler) Touch(namespace, serviceAccount string) {
	r.touch(types.NamespacedName{Namespace: namespace, Name: serviceAccount})
}

func (r *Reconciler) touch(id types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastUsed == nil {
		r.lastUsed = map[types.NamespacedName]time.Time{}
	}
	r.lastUsed[id] = r.now()
}

func (r *Reconciler) forget(id types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.lastUsed, id)
}

// unusedSince is the earliest time the identity may have stopped being used.
func (r *Reconciler) unusedSince(id types.NamespacedName) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	since := r.started
	if t := r.lastUsed[id]; t.After(since) {
		since = t
	}
	return since
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// reconcileTimeout bounds one reconcile, so that an API server that hangs
// does not hold a worker: the request is retried with backoff.
const reconcileTimeout = 30 * time.Second

// Reconcile restores or collects one identity.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	id := req.NamespacedName
	log := logf.FromContext(ctx).WithValues("namespace", id.Namespace, "serviceAccount", id.Name)

	pods, admitted, err := r.podUsers(ctx, id)
	if err != nil {
		return ctrl.Result{}, err
	}
	if admitted.RBAC {
		if err := r.restore(ctx, id, admitted.ManagedAccount); err != nil {
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

	objs, newest, err := r.managedObjects(ctx, id)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(objs) == 0 {
		r.forget(id)
		return ctrl.Result{}, nil
	}
	since := r.unusedSince(id)
	if newest.After(since) {
		since = newest
	}
	if wait := since.Add(r.TTL).Sub(r.now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	// The cache may lag a pod admitted, or a workload applied, a moment ago.
	if used, err := r.usedLive(ctx, id); err != nil || used {
		if used {
			r.touch(id)
		}
		return ctrl.Result{}, err
	}
	for _, o := range objs {
		if err := r.delete(ctx, o); err != nil {
			return ctrl.Result{}, err
		}
	}
	log.Info("Deleted unused identity", "unusedFor", r.now().Sub(since).Round(time.Second).String(), "objects", len(objs))
	r.forget(id)
	return ctrl.Result{}, nil
}

// podUsers counts the cached pods that run as the account, and reports
// what the webhook ensured for it when it admitted them: RBAC if any pod
// was admitted with it, a managed account if any says the webhook created
// the account.
func (r *Reconciler) podUsers(ctx context.Context, id types.NamespacedName) (int, mutate.Identity, error) {
	var pods corev1.PodList
	if err := r.Cache.List(ctx, &pods, client.InNamespace(id.Namespace), client.MatchingFields{indexPodAccount: id.Name}); err != nil {
		return 0, mutate.Identity{}, fmt.Errorf("listing pods of %s from cache: %w", id, err)
	}
	var admitted mutate.Identity
	for i := range pods.Items {
		ensured := ensuredFor(&pods.Items[i], id.Name)
		admitted.RBAC = admitted.RBAC || ensured.RBAC
		admitted.ManagedAccount = admitted.ManagedAccount || ensured.ManagedAccount
		if admitted.ManagedAccount {
			break
		}
	}
	return len(pods.Items), admitted, nil
}

// ensuredFor is what the webhook ensured for serviceAccount when it admitted
// pod, from the status annotation it wrote. A status written before the
// webhook recorded managedServiceAccount reads as an account it did not
// create: its RBAC is restored while the account exists, the account never.
func ensuredFor(pod *corev1.Pod, serviceAccount string) mutate.Identity {
	raw, ok := pod.Annotations[mutate.AnnotationStatus]
	if !ok {
		return mutate.Identity{}
	}
	var st mutate.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil || st.ServiceAccount != serviceAccount || !st.RBAC {
		return mutate.Identity{}
	}
	return mutate.Identity{RBAC: true, ManagedAccount: st.ManagedServiceAccount}
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

// restore ensures the identity of a pod the webhook admitted, if its
// namespace is still opted in: opting a namespace out stops every write.
// The ServiceAccount is re-created only if the webhook created it
// (managedAccount); the Ensurer ensures RBAC only for an account the
// webhook created or one its owner labelled.
func (r *Reconciler) restore(ctx context.Context, id types.NamespacedName, managedAccount bool) error {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Cache.Get(ctx, client.ObjectKey{Name: id.Namespace}, ns); err != nil {
		return client.IgnoreNotFound(err)
	}
	if ns.Labels[mutate.LabelInject] != mutate.InjectEnabled || ns.DeletionTimestamp != nil {
		return nil
	}
	// The usual case, every object cached, costs no Ensure call, so that the
	// Ensurer's counters keep describing admissions.
	if complete, err := r.cachedComplete(ctx, id); err != nil || complete {
		return err
	}
	res, err := r.Ensurer.Restore(ctx, id.Namespace, id.Name)
	log := logf.FromContext(ctx)
	for _, c := range res.Created {
		restored.WithLabelValues(c.Kind).Inc()
		log.Info("Restored object of an admitted pod's identity", "kind", c.Kind, "name", c.Object.GetName())
	}
	var conflict *rbac.ConflictError
	if errors.As(err, &conflict) {
		// Not ours and not what we would create: left alone, as on admission.
		log.Info("Not restoring identity: an object of its name is not ours", "reason", err.Error())
		return nil
	}
	return err
}

// cachedComplete reports whether the identity's ServiceAccount and its
// managed Role and RoleBinding are all in the cache.
func (r *Reconciler) cachedComplete(ctx context.Context, id types.NamespacedName) (bool, error) {
	sa := &metav1.PartialObjectMetadata{}
	sa.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	for _, c := range []struct {
		obj  client.Object
		name string
	}{{sa, id.Name}, {&rbacv1.Role{}, rbac.Name(id.Name)}, {&rbacv1.RoleBinding{}, rbac.Name(id.Name)}} {
		err := r.Cache.Get(ctx, client.ObjectKey{Namespace: id.Namespace, Name: c.name}, c.obj)
		switch {
		case apierrors.IsNotFound(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("reading %s/%s from cache: %w", id.Namespace, c.name, err)
		}
	}
	return true, nil
}

// managedObjects are the identity's objects that carry the managed-by label,
// in deletion order (RoleBinding, Role, ServiceAccount), and the newest
// creation time among them.
func (r *Reconciler) managedObjects(ctx context.Context, id types.NamespacedName) ([]client.Object, time.Time, error) {
	sa := &metav1.PartialObjectMetadata{}
	sa.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	candidates := []struct {
		obj  client.Object
		name string
	}{
		{&rbacv1.RoleBinding{}, rbac.Name(id.Name)},
		{&rbacv1.Role{}, rbac.Name(id.Name)},
		{sa, id.Name},
	}
	var objs []client.Object
	var newest time.Time
	for _, c := range candidates {
		err := r.Cache.Get(ctx, client.ObjectKey{Namespace: id.Namespace, Name: c.name}, c.obj)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, time.Time{}, fmt.Errorf("reading %s/%s from cache: %w", id.Namespace, c.name, err)
		}
		if !rbac.IsManaged(c.obj) {
			continue
		}
		objs = append(objs, c.obj)
		if t := c.obj.GetCreationTimestamp().Time; t.After(newest) {
			newest = t
		}
	}
	return objs, newest, nil
}

// usedLive asks the API server, immediately before a delete, whether any
// pod runs as the account or any workload template names it: the caches may
// lag a pod another replica admitted or a workload applied a moment ago.
func (r *Reconciler) usedLive(ctx context.Context, id types.NamespacedName) (bool, error) {
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	err := r.Live.List(ctx, &pods, client.InNamespace(id.Namespace), client.Limit(1),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.serviceAccountName", id.Name)})
	if err != nil {
		return false, fmt.Errorf("listing pods of %s: %w", id, err)
	}
	if len(pods.Items) > 0 {
		return true, nil
	}
	return r.workloadsNameLive(ctx, id)
}

// liveListPage bounds each page of the live workload lists.
const liveListPage = 250

// workloadsNameLive lists the namespace's workloads from the API server (no
// field selector reaches into a pod template) and reports whether a
// template names the account.
func (r *Reconciler) workloadsNameLive(ctx context.Context, id types.NamespacedName) (bool, error) {
	for _, k := range workloadKinds {
		list := k.list()
		for cont := ""; ; {
			if err := r.Live.List(ctx, list, client.InNamespace(id.Namespace), client.Limit(liveListPage), client.Continue(cont)); err != nil {
				return false, fmt.Errorf("listing %s of %s: %w", k.kind, id, err)
			}
			found := false
			_ = meta.EachListItem(list, func(o runtime.Object) error {
				if slices.Contains(templateAccounts(k.template(o.(client.Object))), id.Name) {
					found = true
				}
				return nil
			})
			if found {
				return true, nil
			}
			if cont = list.GetContinue(); cont == "" {
				break
			}
		}
	}
	return false, nil
}

// delete deletes one managed object exactly as cached: the preconditions
// make the API server refuse if it was replaced, relabelled or changed since.
func (r *Reconciler) delete(ctx context.Context, obj client.Object) error {
	kind := kindOf(obj)
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	err := r.Writer.Delete(ctx, obj, client.Preconditions{UID: &uid, ResourceVersion: &rv})
	switch {
	case err == nil:
		deletes.WithLabelValues(kind, "deleted").Inc()
		return nil
	case apierrors.IsNotFound(err):
		deletes.WithLabelValues(kind, "gone").Inc()
		return nil
	case apierrors.IsConflict(err):
		// Changed since we read it: the next reconcile looks again.
		deletes.WithLabelValues(kind, "changed").Inc()
		return fmt.Errorf("%s %s/%s changed while being collected: %w", kind, obj.GetNamespace(), obj.GetName(), err)
	default:
		deletes.WithLabelValues(kind, "error").Inc()
		return fmt.Errorf("deleting %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
	}
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *rbacv1.Role:
		return "Role"
	case *rbacv1.RoleBinding:
		return "RoleBinding"
	default:
		return "ServiceAccount"
	}
}
