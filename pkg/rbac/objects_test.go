package rbac

import (
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

func TestRoleGrantsOnlySelfTokens(t *testing.T) {
	r := Role("demo", "nginx")
	if r.Namespace != "demo" || r.Name != "nginx-create-token" || !IsManaged(r) {
		t.Fatalf("role metadata: %+v", r.ObjectMeta)
	}
	want := []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"},
		Verbs: []string{"create"}, ResourceNames: []string{"nginx"},
	}}
	if diff := cmp.Diff(want, r.Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
}

func TestRoleBindingBindsTheServiceAccountOnly(t *testing.T) {
	rb := RoleBinding("demo", "nginx")
	if rb.Namespace != "demo" || rb.Name != "nginx-create-token" || !IsManaged(rb) {
		t.Fatalf("rolebinding metadata: %+v", rb.ObjectMeta)
	}
	if diff := cmp.Diff(rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "nginx-create-token"}, rb.RoleRef); diff != "" {
		t.Errorf("roleRef (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "nginx", Namespace: "demo"}}, rb.Subjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
}

func TestServiceAccount(t *testing.T) {
	sa := ServiceAccount("demo", "nginx")
	if sa.Namespace != "demo" || sa.Name != "nginx" || !IsManaged(sa) {
		t.Fatalf("serviceaccount metadata: %+v", sa.ObjectMeta)
	}
}

func TestSameIgnoresMetadata(t *testing.T) {
	foreign := Role("demo", "nginx")
	foreign.Labels = nil
	if !sameRole(foreign, Role("demo", "nginx")) {
		t.Error("a foreign Role with the same rules is not recognised as identical")
	}
	foreign.Rules[0].Verbs = []string{"create", "get"}
	if sameRole(foreign, Role("demo", "nginx")) {
		t.Error("a Role with an extra verb is taken as identical")
	}
	rb := RoleBinding("demo", "nginx")
	rb.Subjects = append(rb.Subjects, rbacv1.Subject{Kind: "User", Name: "mallory"})
	if sameRoleBinding(rb, RoleBinding("demo", "nginx")) {
		t.Error("a RoleBinding with an extra subject is taken as identical")
	}
}

// TestSameRoleIsSemanticDeepEqual holds sameRole and sameRoleBinding to
// equality.Semantic.DeepEqual of what they compare, on changes to every
// field, and fails when PolicyRule, RoleRef or Subject gain a field they
// would not see.
func TestSameRoleIsSemanticDeepEqual(t *testing.T) {
	for typ, fields := range map[reflect.Type]int{
		reflect.TypeFor[rbacv1.PolicyRule](): 5, reflect.TypeFor[rbacv1.RoleRef](): 3, reflect.TypeFor[rbacv1.Subject](): 4,
	} {
		if typ.NumField() != fields {
			t.Errorf("%s has %d fields, sameRole and sameRoleBinding compare %d: compare the new ones", typ, typ.NumField(), fields)
		}
	}
	want := Role("demo", "nginx")
	roles := map[string]func(r *rbacv1.Role){
		"as built":                func(*rbacv1.Role) {},
		"no rules":                func(r *rbacv1.Role) { r.Rules = nil },
		"empty rules":             func(r *rbacv1.Role) { r.Rules = []rbacv1.PolicyRule{} },
		"a second rule":           func(r *rbacv1.Role) { r.Rules = append(r.Rules, r.Rules[0]) },
		"another verb":            func(r *rbacv1.Role) { r.Rules[0].Verbs = []string{"get"} },
		"a verb more":             func(r *rbacv1.Role) { r.Rules[0].Verbs = append(r.Rules[0].Verbs, "get") },
		"another group":           func(r *rbacv1.Role) { r.Rules[0].APIGroups = []string{"apps"} },
		"another resource":        func(r *rbacv1.Role) { r.Rules[0].Resources = []string{"secrets"} },
		"any resource name":       func(r *rbacv1.Role) { r.Rules[0].ResourceNames = nil },
		"empty resource names":    func(r *rbacv1.Role) { r.Rules[0].ResourceNames = []string{} },
		"another resource name":   func(r *rbacv1.Role) { r.Rules[0].ResourceNames = []string{"other"} },
		"a non-resource URL":      func(r *rbacv1.Role) { r.Rules[0].NonResourceURLs = []string{"/healthz"} },
		"empty non-resource URLs": func(r *rbacv1.Role) { r.Rules[0].NonResourceURLs = []string{} },
		"empty groups":            func(r *rbacv1.Role) { r.Rules[0].APIGroups = []string{} },
	}
	for name, change := range roles {
		have := want.DeepCopy()
		change(have)
		if got, semantic := sameRole(have, want), equality.Semantic.DeepEqual(have.Rules, want.Rules); got != semantic {
			t.Errorf("Role %s: sameRole %v, Semantic.DeepEqual %v", name, got, semantic)
		}
	}
	wantRB := RoleBinding("demo", "nginx")
	bindings := map[string]func(rb *rbacv1.RoleBinding){
		"as built":           func(*rbacv1.RoleBinding) {},
		"no subjects":        func(rb *rbacv1.RoleBinding) { rb.Subjects = nil },
		"empty subjects":     func(rb *rbacv1.RoleBinding) { rb.Subjects = []rbacv1.Subject{} },
		"a second subject":   func(rb *rbacv1.RoleBinding) { rb.Subjects = append(rb.Subjects, rb.Subjects[0]) },
		"another subject":    func(rb *rbacv1.RoleBinding) { rb.Subjects[0].Name = "other" },
		"a subject group":    func(rb *rbacv1.RoleBinding) { rb.Subjects[0].APIGroup = "x" },
		"another namespace":  func(rb *rbacv1.RoleBinding) { rb.Subjects[0].Namespace = "other" },
		"another kind":       func(rb *rbacv1.RoleBinding) { rb.Subjects[0].Kind = rbacv1.UserKind },
		"a ClusterRole":      func(rb *rbacv1.RoleBinding) { rb.RoleRef.Kind = "ClusterRole" },
		"another role":       func(rb *rbacv1.RoleBinding) { rb.RoleRef.Name = "admin" },
		"another role group": func(rb *rbacv1.RoleBinding) { rb.RoleRef.APIGroup = "" },
	}
	for name, change := range bindings {
		have := wantRB.DeepCopy()
		change(have)
		got := sameRoleBinding(have, wantRB)
		semantic := equality.Semantic.DeepEqual(have.RoleRef, wantRB.RoleRef) && equality.Semantic.DeepEqual(have.Subjects, wantRB.Subjects)
		if got != semantic {
			t.Errorf("RoleBinding %s: sameRoleBinding %v, Semantic.DeepEqual %v", name, got, semantic)
		}
	}
}
