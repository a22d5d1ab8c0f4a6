package server

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// The transforms of the Namespace, ServiceAccount, Role and RoleBinding
// informers keep of each object what the handler, the Ensurer and the
// reconciler read (name, namespace, uid, resourceVersion, timestamps, the
// managed-by label, a namespace's or a ServiceAccount's inject label, a
// namespace's policy annotations, a Role's rules, a
// RoleBinding's roleRef and subjects) and point whatever every object of ours
// has in common (those labels, the rule's group, resource and verb, the
// roleRef's group and kind, the subject's kind and namespace) at one shared
// copy instead of a decoded one per object. At 100 000 ServiceAccounts, each
// with its Role and RoleBinding, that halves the caches (docs/performance.md).
//
// Shared maps and slices are safe because nothing writes to a cached object:
// the cache hands out deep copies, and event handlers only read.

// transformedObjects are the cache settings of the webhook's own informers;
// Roles and RoleBindings are only cached if ours (selector).
func transformedObjects(ours labels.Selector) map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		metadataOf("Namespace"):      {Transform: trimNamespace},
		metadataOf("ServiceAccount"): {Transform: trimServiceAccount},
		&rbacv1.Role{}:               {Label: ours, Transform: trimRole},
		&rbacv1.RoleBinding{}:        {Label: ours, Transform: trimRoleBinding},
	}
}

func metadataOf(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return m
}

// managedLabels is the label set of every object the webhook creates.
var managedLabels = map[string]string{rbac.LabelManagedBy: rbac.ManagedBy}

// optedInLabels is all that is kept of an opted-in namespace's labels, and
// of a ServiceAccount's its owner labelled for token RBAC.
var optedInLabels = map[string]string{mutate.LabelInject: mutate.InjectEnabled}

// trimMeta drops what no reader of the caches reads.
func trimMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	m.Annotations = nil
	m.OwnerReferences = nil
}

// shareManagedLabels replaces labels that are exactly ours with the shared
// set; a ServiceAccount's other labels are dropped (only the managed-by
// label is read, to tell ours from others').
func shareManagedLabels(m *metav1.ObjectMeta, dropOthers bool) {
	switch {
	case rbac.IsManaged(m) && (len(m.Labels) == 1 || dropOthers):
		m.Labels = managedLabels
	case dropOthers:
		m.Labels = nil
	}
}

// namespacePolicy keeps of a namespace's annotations its policy only: nil
// for most namespaces, which set none; the decoded map itself when it holds
// nothing else.
func namespacePolicy(annotations map[string]string) map[string]string {
	n := 0
	for _, k := range mutate.NamespacePolicyAnnotations {
		if _, ok := annotations[k]; ok {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case len(annotations):
		return annotations
	}
	kept := make(map[string]string, n)
	for _, k := range mutate.NamespacePolicyAnnotations {
		if v, ok := annotations[k]; ok {
			kept[k] = v
		}
	}
	return kept
}

func trimNamespace(obj any) (any, error) {
	if ns, ok := obj.(*metav1.PartialObjectMetadata); ok {
		policy := namespacePolicy(ns.Annotations)
		trimMeta(&ns.ObjectMeta)
		ns.Annotations = policy
		ns.TypeMeta = sharedTypeMeta(ns.TypeMeta)
		// Opt-in is the only label read, and only its value "enabled".
		if ns.Labels[mutate.LabelInject] == mutate.InjectEnabled {
			ns.Labels = optedInLabels
		} else {
			ns.Labels = nil
		}
	}
	return obj, nil
}

func trimServiceAccount(obj any) (any, error) {
	if sa, ok := obj.(*metav1.PartialObjectMetadata); ok {
		trimMeta(&sa.ObjectMeta)
		sa.Finalizers = nil
		// The Ensurer reads whose an account is: the webhook's (managed-by)
		// or one its owner labelled token-projector.io/inject=enabled.
		labelled := !rbac.IsManaged(sa) && sa.Labels[mutate.LabelInject] == mutate.InjectEnabled
		shareManagedLabels(&sa.ObjectMeta, true)
		if labelled {
			sa.Labels = optedInLabels
		}
		sa.TypeMeta = sharedTypeMeta(sa.TypeMeta)
	}
	return obj, nil
}

func trimRole(obj any) (any, error) {
	if r, ok := obj.(*rbacv1.Role); ok {
		trimMeta(&r.ObjectMeta)
		shareManagedLabels(&r.ObjectMeta, false)
		for i := range r.Rules {
			rule := &r.Rules[i]
			rule.APIGroups = sharedList(rule.APIGroups)
			rule.Resources = sharedList(rule.Resources)
			rule.Verbs = sharedList(rule.Verbs)
			// <sa>-create-token grants on <sa>: the name's prefix serves.
			if sa, ok := strings.CutSuffix(r.Name, mutate.RBACNameSuffix); ok && len(rule.ResourceNames) == 1 && rule.ResourceNames[0] == sa {
				rule.ResourceNames[0] = sa
			}
		}
	}
	return obj, nil
}

func trimRoleBinding(obj any) (any, error) {
	if rb, ok := obj.(*rbacv1.RoleBinding); ok {
		trimMeta(&rb.ObjectMeta)
		shareManagedLabels(&rb.ObjectMeta, false)
		rb.RoleRef.APIGroup = shared(rb.RoleRef.APIGroup)
		rb.RoleRef.Kind = shared(rb.RoleRef.Kind)
		if rb.RoleRef.Name == rb.Name {
			rb.RoleRef.Name = rb.Name
		}
		sa, _ := strings.CutSuffix(rb.Name, mutate.RBACNameSuffix)
		for i := range rb.Subjects {
			s := &rb.Subjects[i]
			s.Kind, s.APIGroup = shared(s.Kind), shared(s.APIGroup)
			if s.Namespace == rb.Namespace {
				s.Namespace = rb.Namespace
			}
			if s.Name == sa {
				s.Name = sa
			}
		}
	}
	return obj, nil
}

// shared returns the constant for a string every object of ours holds, so
// that the decoded copy can be collected.
func shared(s string) string {
	switch s {
	case "":
		return ""
	case rbacv1.GroupName:
		return rbacv1.GroupName
	case "Role":
		return "Role"
	case "ClusterRole":
		return "ClusterRole"
	case rbacv1.UserKind:
		return rbacv1.UserKind
	case rbacv1.ServiceAccountKind:
		return rbacv1.ServiceAccountKind
	case "serviceaccounts/token":
		return "serviceaccounts/token"
	case "create":
		return "create"
	case "v1":
		return "v1"
	case "meta.k8s.io/v1":
		return "meta.k8s.io/v1"
	case "PartialObjectMetadata":
		return "PartialObjectMetadata"
	}
	return s
}

// sharedLists are the one-element lists of our Roles' rules.
var sharedLists = map[string][]string{"": {""}, "serviceaccounts/token": {"serviceaccounts/token"}, "create": {"create"}}

func sharedList(l []string) []string {
	if len(l) == 1 {
		if s, ok := sharedLists[l[0]]; ok {
			return s
		}
	}
	return l
}

func sharedTypeMeta(t metav1.TypeMeta) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: shared(t.APIVersion), Kind: shared(t.Kind)}
}
