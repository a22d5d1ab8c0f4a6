package rbac

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
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
