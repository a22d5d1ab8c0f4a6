package rbac

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// Whoever may create pods in a namespace may already run them as any
// existing account there; what the webhook adds is creating an account by
// proxy. Kubernetes never removes a RoleBinding or ClusterRoleBinding whose
// subject account was deleted, or does not exist yet (GitOps often applies
// a binding before its account), and such a binding grants its rights to
// whatever account of that name exists next. So the Ensurer never creates
// an account that a binding it did not write names as a subject: it
// answers with a *BoundError, and the pod is denied.

// IndexServiceAccountSubject is the field index of the Bindings cache: the
// "<namespace>/<name>" of every ServiceAccount a RoleBinding or
// ClusterRoleBinding names as a subject (ServiceAccountSubjects).
const IndexServiceAccountSubject = "tokenProjector.serviceAccountSubject"

// NotOurs selects the bindings the webhook did not write: its own
// <sa>-create-token RoleBindings carry the managed-by label (the one
// provenance mark of every object it creates, as on its accounts and
// Roles; only an RBAC admin can write a binding, its labels included).
func NotOurs() labels.Selector {
	req, err := labels.NewRequirement(LabelManagedBy, selection.NotEquals, []string{ManagedBy})
	if err != nil {
		panic(err) // a constant requirement
	}
	return labels.NewSelector().Add(*req)
}

// SubjectAccount is the ServiceAccount a subject of a binding in
// bindingNamespace ("" for a ClusterRoleBinding) names, exactly as
// Kubernetes RBAC matches it (k8s.io/kubernetes pkg/registry/rbac/validation
// appliesToUser): kind ServiceAccount, whose empty namespace is the
// binding's; or kind User named system:serviceaccount:<namespace>:<name>,
// the user name a ServiceAccount's tokens authenticate as. Groups
// (system:serviceaccounts, system:serviceaccounts:<namespace>) name every
// account alike, existing ones included, so they are not about one account.
func SubjectAccount(s rbacv1.Subject, bindingNamespace string) (namespace, name string, ok bool) {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		namespace = s.Namespace
		if namespace == "" {
			namespace = bindingNamespace
		}
		return namespace, s.Name, namespace != "" && s.Name != ""
	case rbacv1.UserKind:
		rest, found := strings.CutPrefix(s.Name, serviceAccountUserPrefix)
		if !found {
			return "", "", false
		}
		// A namespace name holds no ':'; the rest is the account's name.
		namespace, name, found = strings.Cut(rest, ":")
		return namespace, name, found && namespace != "" && name != ""
	}
	return "", "", false
}

// serviceAccountUserPrefix starts the user name of every ServiceAccount
// (k8s.io/apiserver pkg/authentication/serviceaccount).
const serviceAccountUserPrefix = "system:serviceaccount:"

// ServiceAccountSubjects is IndexServiceAccountSubject's value of a
// RoleBinding or ClusterRoleBinding.
func ServiceAccountSubjects(obj client.Object) []string {
	var subjects []rbacv1.Subject
	switch b := obj.(type) {
	case *rbacv1.RoleBinding:
		subjects = b.Subjects
	case *rbacv1.ClusterRoleBinding:
		subjects = b.Subjects
	}
	var keys []string
	for _, s := range subjects {
		if ns, name, ok := SubjectAccount(s, obj.GetNamespace()); ok {
			keys = append(keys, subjectKey(ns, name))
		}
	}
	return keys
}

// subjectKey is the IndexServiceAccountSubject key of an account.
func subjectKey(namespace, name string) string { return namespace + "/" + name }

// BoundError is an account the webhook would create that bindings it did
// not write already name as a subject: created, it would get their rights.
type BoundError struct {
	Namespace, ServiceAccount string
	// Bindings are "<Kind> [<namespace>/]<name> (grants <roleRef kind> <name>)",
	// sorted; at most maxBindingsNamed.
	Bindings []string
	// More is how many more bindings name it.
	More int
}

// maxBindingsNamed bounds the bindings a denial names.
const maxBindingsNamed = 5

func (e *BoundError) Error() string {
	named := strings.Join(e.Bindings, ", ")
	if e.More > 0 {
		named += fmt.Sprintf(" and %d more", e.More)
	}
	return fmt.Sprintf("ServiceAccount %s/%s does not exist and %s, which token-projector did not write, already name it as a subject: "+
		"the webhook does not create an account that existing bindings grant rights to (a leftover binding of a deleted account, or one applied before its account). "+
		"A cluster admin resolves this: create the account (kubectl create serviceaccount -n %s %s) and, if it should mint its own tokens, "+
		"label it %s=%s; or remove the binding. Or name another ServiceAccount",
		e.Namespace, e.ServiceAccount, named, e.Namespace, e.ServiceAccount, mutate.LabelInject, mutate.InjectEnabled)
}

// IsBound reports whether err is, or wraps, a *BoundError.
func IsBound(err error) bool {
	var be *BoundError
	return errors.As(err, &be)
}

// boundError names the bindings of namespace/serviceAccount.
func boundError(namespace, serviceAccount string, bindings []string) *BoundError {
	slices.Sort(bindings)
	bindings = slices.Compact(bindings)
	e := &BoundError{Namespace: namespace, ServiceAccount: serviceAccount}
	if len(bindings) > maxBindingsNamed {
		e.More = len(bindings) - maxBindingsNamed
		bindings = bindings[:maxBindingsNamed]
	}
	e.Bindings = bindings
	return e
}

func describeRoleBinding(b *rbacv1.RoleBinding) string {
	return fmt.Sprintf("RoleBinding %s/%s (grants %s %s)", b.Namespace, b.Name, b.RoleRef.Kind, b.RoleRef.Name)
}

func describeClusterRoleBinding(b *rbacv1.ClusterRoleBinding) string {
	return fmt.Sprintf("ClusterRoleBinding %s (grants %s %s)", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
}

// indexedBindings are the bindings not ours that name namespace/serviceAccount
// as the Bindings cache shows them: an index lookup, no API call.
func (e *Ensurer) indexedBindings(ctx context.Context, namespace, serviceAccount string) ([]string, error) {
	if e.Bindings == nil {
		return nil, nil
	}
	key := client.MatchingFields{IndexServiceAccountSubject: subjectKey(namespace, serviceAccount)}
	var found []string
	var rbs rbacv1.RoleBindingList
	if err := e.Bindings.List(ctx, &rbs, key); err != nil {
		return nil, fmt.Errorf("reading the RoleBindings that name ServiceAccount %s/%s from cache: %w", namespace, serviceAccount, err)
	}
	for i := range rbs.Items {
		found = append(found, describeRoleBinding(&rbs.Items[i]))
	}
	var crbs rbacv1.ClusterRoleBindingList
	if err := e.Bindings.List(ctx, &crbs, key); err != nil {
		return nil, fmt.Errorf("reading the ClusterRoleBindings that name ServiceAccount %s/%s from cache: %w", namespace, serviceAccount, err)
	}
	for i := range crbs.Items {
		found = append(found, describeClusterRoleBinding(&crbs.Items[i]))
	}
	return found, nil
}

// liveBindings are the RoleBindings not ours in the account's own namespace
// that name it, read from the API server: the one live check a cold create
// affords, for the cache lag of the Bindings cache where it matters. A
// binding written a moment before the pod or workload that names its
// account (one kubectl apply, one GitOps sync) may not be cached yet; the
// namespace's own RoleBindings are what such an apply most often holds, and
// listing them is one call bounded by the namespace, where listing every
// ClusterRoleBinding on each cold create would cost in proportion to the
// cluster. ClusterRoleBindings, and RoleBindings in other namespaces, are
// seen once cached (the watch's lag, normally well under a second):
// SECURITY.md says so.
func (e *Ensurer) liveBindings(ctx context.Context, namespace, serviceAccount string, progress func(string)) ([]string, error) {
	doing := "listing the RoleBindings of namespace " + namespace + " from the API server"
	if err := e.allow(ctx, doing, progress); err != nil {
		return nil, err
	}
	apiReads.WithLabelValues(kindRoleBinding).Inc()
	var rbs rbacv1.RoleBindingList
	if err := e.Live.List(ctx, &rbs, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: NotOurs()}); err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	// The index's own key function, so that the live check and the cache
	// agree on which bindings name the account.
	key := subjectKey(namespace, serviceAccount)
	var found []string
	for i := range rbs.Items {
		if rb := &rbs.Items[i]; slices.Contains(ServiceAccountSubjects(rb), key) {
			found = append(found, describeRoleBinding(rb))
		}
	}
	return found, nil
}
