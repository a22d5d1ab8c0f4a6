package reconcile

import (
	"context"
	"fmt"
	"slices"
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

	"github.com/token-projector/token-projector/pkg/rbac"
)

// collect deletes an identity no pod or workload uses, once it has been
// unused for TTL. Every replica admits pods, and an admission another
// replica serves is invisible here until its pod is stored; a pod in flight
// (admitted, not yet stored) must not lose its account. So collection goes
// in two steps, and lets the API server carry the signal between replicas:
//
//  1. delete the RoleBinding alone. From then on, any replica that admits
//     a pod for the account finds the RoleBinding missing in its cache and
//     creates it again, and a pod admitted just before is stored within the
//     grace period, where the pod watch sees it;
//  2. after CollectGrace, if the RoleBinding is still absent (cache, then a
//     live read) and no pod or workload uses the account (cache, then a
//     live look), delete the Role and the ServiceAccount.
//
// A RoleBinding created again is a managed object newer than the first
// step, and a pod seen is a use: either starts the TTL over.
func (r *Reconciler) collect(ctx context.Context, id types.NamespacedName) (ctrl.Result, error) {
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
	now := r.now()
	condemnedAt, condemned := r.condemnedAt(id, since)
	if !condemned {
		if wait := since.Add(r.TTL).Sub(now); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	} else if wait := condemnedAt.Add(r.grace()).Sub(now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	// The cache may lag a pod admitted, or a workload applied, a moment ago.
	if used, err := r.usedLive(ctx, id); err != nil || used {
		if used {
			r.touch(id)
		}
		return ctrl.Result{}, err
	}
	log := logf.FromContext(ctx)
	if !condemned {
		for _, o := range objs {
			if isRoleBinding(o) {
				if err := r.delete(ctx, o); err != nil {
					return ctrl.Result{}, err
				}
			}
		}
		r.condemn(id, now)
		log.V(1).Info("Collecting unused identity: RoleBinding deleted", "namespace", id.Namespace, "serviceAccount", id.Name, "grace", r.grace().String())
		return ctrl.Result{RequeueAfter: r.grace()}, nil
	}
	recreated := slices.ContainsFunc(objs, isRoleBinding)
	if !recreated {
		// The cache may lag a RoleBinding another replica created a
		// moment ago: ask the API server, just before the deletes.
		if recreated, err = r.roleBindingLive(ctx, id); err != nil {
			return ctrl.Result{}, err
		}
	}
	if recreated {
		// Created again since the first step: an admission, on some
		// replica, wants the identity. Creation times have whole seconds
		// only, so the RoleBinding's presence, not its age, decides.
		r.touch(id)
		return ctrl.Result{RequeueAfter: r.TTL}, nil
	}
	for _, o := range objs {
		if err := r.delete(ctx, o); err != nil {
			return ctrl.Result{}, err
		}
	}
	log.Info("Deleted unused identity", "namespace", id.Namespace, "serviceAccount", id.Name,
		"unusedFor", now.Sub(since).Round(time.Second).String(), "objects", len(objs))
	r.forget(id)
	return ctrl.Result{}, nil
}

// condemnedAt is when collection deleted the identity's RoleBinding, if it
// did and nothing has used or re-created the identity since.
func (r *Reconciler) condemnedAt(id types.NamespacedName, since time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.condemned[id]
	if ok && since.After(at) {
		delete(r.condemned, id)
		return time.Time{}, false
	}
	return at, ok
}

func (r *Reconciler) condemn(id types.NamespacedName, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.condemned == nil {
		r.condemned = map[types.NamespacedName]time.Time{}
	}
	r.condemned[id] = at
}

// managedObjects are the identity's objects that carry the managed-by label,
// in deletion order (RoleBinding, Role, ServiceAccount), and the newest
// creation time among them.
func (r *Reconciler) managedObjects(ctx context.Context, id types.NamespacedName) ([]client.Object, time.Time, error) {
	candidates := []struct {
		obj  client.Object
		name string
	}{
		{&rbacv1.RoleBinding{}, rbac.Name(id.Name)},
		{&rbacv1.Role{}, rbac.Name(id.Name)},
		{partialMeta("ServiceAccount"), id.Name},
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

// roleBindingLive reports whether the API server has the identity's
// RoleBinding, whoever made it: collection's second step deletes the Role
// and the account only if it is still absent.
func (r *Reconciler) roleBindingLive(ctx context.Context, id types.NamespacedName) (bool, error) {
	err := r.Live.Get(ctx, client.ObjectKey{Namespace: id.Namespace, Name: rbac.Name(id.Name)}, &rbacv1.RoleBinding{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading RoleBinding of %s: %w", id, err)
	}
	return true, nil
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

func isRoleBinding(obj client.Object) bool {
	_, ok := obj.(*rbacv1.RoleBinding)
	return ok
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
