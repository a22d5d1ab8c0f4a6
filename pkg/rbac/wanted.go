package rbac

import (
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The kinds the Ensurer ensures, as counted in its metrics.
const (
	kindServiceAccount = "ServiceAccount"
	kindRole           = "Role"
	kindRoleBinding    = "RoleBinding"
)

// wanted is one object the Ensurer makes exist, by kind and name; the
// object itself is built only to be created or compared (build, accept),
// so that the warm path, which compares on its stack, allocates none.
type wanted struct {
	kind, namespace, name, serviceAccount string
}

func accountOf(namespace, serviceAccount string) wanted {
	return wanted{kindServiceAccount, namespace, serviceAccount, serviceAccount}
}

// grants are the Role and RoleBinding of an account, in the order they are
// created: kube-apiserver's RBAC escalation check of the RoleBinding reads
// the Role.
func grants(namespace, serviceAccount string) [2]wanted {
	name := Name(serviceAccount)
	return [2]wanted{
		{kindRole, namespace, name, serviceAccount},
		{kindRoleBinding, namespace, name, serviceAccount},
	}
}

func (w wanted) key() client.ObjectKey { return client.ObjectKey{Namespace: w.namespace, Name: w.name} }

func (w wanted) String() string { return w.kind + " " + w.namespace + "/" + w.name }

// build is the object to create.
func (w wanted) build() client.Object {
	switch w.kind {
	case kindRole:
		return Role(w.namespace, w.serviceAccount)
	case kindRoleBinding:
		return RoleBinding(w.namespace, w.serviceAccount)
	}
	return ServiceAccount(w.namespace, w.serviceAccount)
}

// empty is an object of the kind to read into; of an account, its metadata.
func (w wanted) empty() client.Object {
	switch w.kind {
	case kindRole:
		return &rbacv1.Role{}
	case kindRoleBinding:
		return &rbacv1.RoleBinding{}
	}
	return serviceAccountMeta()
}

// accept reports whether an existing Role or RoleBinding grants exactly
// what ours would: a *ConflictError if not. (Of an account, whose it is
// decides; see classify.)
func (w wanted) accept(have client.Object) error {
	switch have := have.(type) {
	case *rbacv1.Role:
		if sameRole(have, Role(w.namespace, w.serviceAccount)) {
			return nil
		}
	case *rbacv1.RoleBinding:
		if sameRoleBinding(have, RoleBinding(w.namespace, w.serviceAccount)) {
			return nil
		}
	default:
		return nil
	}
	return &ConflictError{Kind: w.kind, Namespace: w.namespace, Name: w.name, Reason: conflictReason(have)}
}

func conflictReason(have client.Object) string {
	if IsManaged(have) {
		return "was changed since token-projector created it"
	}
	return "is not managed by token-projector and differs from what it would create"
}
