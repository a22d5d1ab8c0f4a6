package reconcile

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// restore ensures the Role and RoleBinding of an account injected pods run
// as, if its namespace is still opted in (opting out stops every write) and
// the cache shows the account eligible: created by the webhook or labelled
// by its owner. Whether to write is decided by those objects alone, never
// by the pods, so a pod author cannot make the webhook grant or re-grant
// anything; the Ensurer reads the account from the API server once more
// before it creates anything, and never creates the account itself.
func (r *Reconciler) restore(ctx context.Context, id types.NamespacedName) error {
	ns := partialMeta("Namespace")
	if err := r.Cache.Get(ctx, client.ObjectKey{Name: id.Namespace}, ns); err != nil {
		return client.IgnoreNotFound(err)
	}
	if ns.Labels[mutate.LabelInject] != mutate.InjectEnabled || ns.DeletionTimestamp != nil {
		return nil
	}
	// The usual cases, an account that is not eligible or an identity
	// complete in the cache, cost no Ensurer call and no API call, so that
	// pod churn costs nothing and the Ensurer's counters keep describing
	// admissions. An adopted identity (a labelled account with a Role and
	// RoleBinding made by hand, identical to ours) is never complete in
	// the cache, which holds only ours: the Ensurer answers its restore
	// from its memory of them, with no API call either.
	if need, err := r.needsRestore(ctx, id); err != nil || !need {
		return err
	}
	res, err := r.Ensurer.Restore(ctx, id.Namespace, id.Name)
	log := logf.FromContext(ctx)
	for _, c := range res.Created {
		restored.WithLabelValues(c.Kind).Inc()
		log.Info("Restored object of an identity in use", "kind", c.Kind, "namespace", id.Namespace, "name", c.Object.GetName())
	}
	var conflict *rbac.ConflictError
	if errors.As(err, &conflict) {
		// Not ours and not what we would create: left alone, as on admission.
		log.Info("Not restoring identity: an object of its name is not ours", "namespace", id.Namespace, "serviceAccount", id.Name, "reason", err.Error())
		return nil
	}
	return err
}

// needsRestore reports whether the cache shows the account eligible for
// RBAC (managed, or labelled by its owner) with its Role or RoleBinding
// missing.
func (r *Reconciler) needsRestore(ctx context.Context, id types.NamespacedName) (bool, error) {
	sa := partialMeta("ServiceAccount")
	switch err := r.Cache.Get(ctx, id, sa); {
	case apierrors.IsNotFound(err):
		return false, nil // deleted: revoked, never re-created
	case err != nil:
		return false, fmt.Errorf("reading ServiceAccount %s from cache: %w", id, err)
	case !eligible(sa):
		return false, nil
	}
	for _, obj := range []client.Object{&rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		err := r.Cache.Get(ctx, client.ObjectKey{Namespace: id.Namespace, Name: rbac.Name(id.Name)}, obj)
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("reading %s of %s from cache: %w", kindOf(obj), id, err)
		}
	}
	return false, nil
}

// eligible reports whether an account may mint tokens for itself by the
// webhook's grant: the webhook created it, or its owner labelled it.
func eligible(sa metav1.Object) bool {
	return rbac.IsManaged(sa) || sa.GetLabels()[mutate.LabelInject] == mutate.InjectEnabled
}

func partialMeta(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return m
}
