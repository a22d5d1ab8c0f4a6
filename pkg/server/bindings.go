package server

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/rbac"
)

// The Bindings cache (rbac.Ensurer.Bindings): every RoleBinding and
// ClusterRoleBinding the webhook did not write, cut down to the
// ServiceAccounts it names and indexed by them, so that a cold create asks
// "does a binding name this account?" with one index lookup. It is a cache
// of its own because the manager's caches hold the webhook's own
// RoleBindings (selected by the managed-by label) and one cache has one
// informer per kind: this one selects the others. It is cluster-wide in
// every RBAC scope: a RoleBinding in any namespace, and any
// ClusterRoleBinding, grants an account it names its rights (the read-only
// rules of token-projector-namespaces in config/rbac/role.yaml).

// bindingObjects are the Bindings cache's informers.
func bindingObjects() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&rbacv1.RoleBinding{}:        {Label: rbac.NotOurs(), Transform: trimBinding},
		&rbacv1.ClusterRoleBinding{}: {Transform: trimBinding},
	}
}

// newBindingsCache makes the Bindings cache, its informers declared and
// indexed, and adds it to mgr, which starts it.
func newBindingsCache(mgr ctrl.Manager) (cache.Cache, error) {
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient(),
		ByObject: bindingObjects(),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the bindings cache: %w", err)
	}
	for obj := range bindingObjects() {
		if err := c.IndexField(context.Background(), obj, rbac.IndexServiceAccountSubject, rbac.ServiceAccountSubjects); err != nil {
			return nil, fmt.Errorf("indexing %T by the ServiceAccounts it names: %w", obj, err)
		}
	}
	if err := mgr.Add(managerCache{c}); err != nil {
		return nil, fmt.Errorf("adding the bindings cache: %w", err)
	}
	return c, nil
}

// managerCache is a cache the manager runs as it runs its own: among its
// caches, started (and synced) before the webhook server, on every replica.
// A bare cache.Cache would be a leader-only runnable.
type managerCache struct{ cache.Cache }

func (c managerCache) GetCache() cache.Cache { return c.Cache }

// trimBinding keeps of a binding its name, namespace, resourceVersion and
// deletionTimestamp, its roleRef (the denial names what the
// binding grants) and the subjects that name one ServiceAccount
// (rbac.SubjectAccount); a binding to users and groups only keeps none.
// Labels go too: the informer's selector has read them.
func trimBinding(obj any) (any, error) {
	switch b := obj.(type) {
	case *rbacv1.RoleBinding:
		trimBindingMeta(&b.ObjectMeta)
		b.RoleRef = sharedRoleRef(b.RoleRef)
		b.Subjects = accountSubjects(b.Subjects, b.Namespace)
	case *rbacv1.ClusterRoleBinding:
		trimBindingMeta(&b.ObjectMeta)
		b.RoleRef = sharedRoleRef(b.RoleRef)
		b.Subjects = accountSubjects(b.Subjects, "")
	}
	return obj, nil
}

func trimBindingMeta(m *metav1.ObjectMeta) {
	trimMeta(m)
	m.Labels = nil
	m.Finalizers = nil
	// Nothing reads them (the store is keyed by namespace and name).
	m.UID = ""
	m.CreationTimestamp = metav1.Time{}
}

func sharedRoleRef(r rbacv1.RoleRef) rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: shared(r.APIGroup), Kind: shared(r.Kind), Name: r.Name}
}

// accountSubjects are the subjects of a binding in namespace that name a
// ServiceAccount: subjects itself if all do, nil if none does.
func accountSubjects(subjects []rbacv1.Subject, namespace string) []rbacv1.Subject {
	n := 0
	for _, s := range subjects {
		if _, _, ok := rbac.SubjectAccount(s, namespace); ok {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case len(subjects):
		for i := range subjects {
			subjects[i].Kind, subjects[i].APIGroup = shared(subjects[i].Kind), shared(subjects[i].APIGroup)
		}
		return subjects
	}
	kept := make([]rbacv1.Subject, 0, n)
	for _, s := range subjects {
		if _, _, ok := rbac.SubjectAccount(s, namespace); ok {
			s.Kind, s.APIGroup = shared(s.Kind), shared(s.APIGroup)
			kept = append(kept, s)
		}
	}
	return kept
}
