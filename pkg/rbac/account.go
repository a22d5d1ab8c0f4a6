package rbac

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// account is whose a ServiceAccount is, which decides whether it gets RBAC.
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

// eligible reports whether the account gets its Role and RoleBinding.
func (a account) eligible() bool { return a == accountManaged || a == accountLabelled }

func (a account) result() Result {
	return Result{RBAC: a.eligible(), ManagedAccount: a == accountManaged}
}

// existing is how an account read live (its create met AlreadyExists, or a
// restore read it) is counted.
func (a account) existing() string {
	switch {
	case a == accountMissing:
		return "missing"
	case !a.eligible():
		return "unlabelled"
	}
	return "existing"
}

// serviceAccountMeta is what is read of an account: its metadata (the cache
// holds no more).
func serviceAccountMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kindServiceAccount))
	return m
}
