// Package rbac builds the identity a pod's tokens are minted for (a
// ServiceAccount, and a Role and RoleBinding that let it create tokens for
// itself) and ensures it exists before the pod is admitted.
package rbac

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
)

const (
	// LabelManagedBy marks the objects the webhook created; it is how the
	// webhook tells its own objects from the ones it must never touch.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy on our objects.
	ManagedBy = "token-projector"
)

// Name is the name of the Role and RoleBinding of a ServiceAccount.
func Name(serviceAccount string) string { return serviceAccount + mutate.RBACNameSuffix }

func meta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{LabelManagedBy: ManagedBy}}
}

// ServiceAccount is the ServiceAccount the webhook creates when it is missing.
func ServiceAccount(namespace, serviceAccount string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: meta(namespace, serviceAccount),
	}
}

// Role lets one ServiceAccount create tokens for itself and for nothing else.
func Role(namespace, serviceAccount string) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(namespace, Name(serviceAccount)),
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"serviceaccounts/token"},
			Verbs:         []string{"create"},
			ResourceNames: []string{serviceAccount},
		}},
	}
}

// RoleBinding grants Role(namespace, serviceAccount) to that ServiceAccount.
func RoleBinding(namespace, serviceAccount string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(namespace, Name(serviceAccount)),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: Name(serviceAccount)},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: namespace}},
	}
}

// IsManaged reports whether the webhook created obj.
func IsManaged(obj metav1.Object) bool { return obj.GetLabels()[LabelManagedBy] == ManagedBy }

// sameRole reports whether have grants exactly what want grants; labels and
// annotations do not matter to what a Role allows. It is
// equality.Semantic.DeepEqual of the rules (nil and empty lists alike),
// field by field: every warm admission compares a Role, and the reflective
// compare was a twentieth of its CPU. TestSameRoleIsSemanticDeepEqual
// fails if PolicyRule gains a field this does not compare.
func sameRole(have, want *rbacv1.Role) bool {
	return slices.EqualFunc(have.Rules, want.Rules, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.Verbs, b.Verbs) && slices.Equal(a.APIGroups, b.APIGroups) &&
			slices.Equal(a.Resources, b.Resources) && slices.Equal(a.ResourceNames, b.ResourceNames) &&
			slices.Equal(a.NonResourceURLs, b.NonResourceURLs)
	})
}

// sameRoleBinding reports whether have binds exactly what want binds
// (RoleRef and Subject are structs of strings, compared whole).
func sameRoleBinding(have, want *rbacv1.RoleBinding) bool {
	return have.RoleRef == want.RoleRef && slices.Equal(have.Subjects, want.Subjects)
}
