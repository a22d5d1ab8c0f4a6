package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// deployment is a Deployment whose template names sa in the
// service-account annotation.
func deployment(ns, name, sa string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template("", classic(sa)),
		},
	}
}

// assertDenied checks err is the webhook's 403 and says each of want.
func assertDenied(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "denied the request") {
		t.Fatalf("%s: got %v, want the webhook's denial", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: the denial %q does not say %q", what, err, w)
		}
	}
}

func assertNoAccount(t *testing.T, ns, sa string) {
	t.Helper()
	if err := env.Admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: sa}, &corev1.ServiceAccount{}); !apierrors.IsNotFound(err) {
		t.Errorf("ServiceAccount %s/%s: %v, want NotFound", ns, sa, err)
	}
}

// TestLeftoverBindingBlocksRecreation is the scenario: the owner
// deletes ci-deployer, which the webhook created, to revoke it; a
// ClusterRoleBinding naming it is left behind. A pod, and a Deployment,
// naming ci-deployer are then denied with a 403 naming the binding, and the
// account is not created again (before, the webhook re-created it and the
// pod ran with the binding's rights). The webhook's own <sa>-create-token
// RoleBinding, left behind as well, is not what denies it. Once an admin
// removes the binding, the next pod gets a fresh account (a new UID).
func TestLeftoverBindingBlocksRecreation(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	const sa = "ci-deployer"
	first := pod(ns, "first", classic(sa))
	if err := env.Admin.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	var old corev1.ServiceAccount
	if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: sa}, &old); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-ci-deployer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	if err := env.Admin.Create(ctx, crb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Admin.Delete(context.Background(), crb) })
	if err := env.Admin.Delete(ctx, &old); err != nil {
		t.Fatal(err)
	}

	named := "ClusterRoleBinding " + crb.Name + " (grants ClusterRole view)"
	// The webhook's caches catch up with the deletion and the binding: a
	// dry run, answered from them, says so.
	testenv.WaitFor(t, "the webhook's caches show the account deleted and the binding", 30*time.Second, func() bool {
		err := env.Admin.Create(ctx, pod(ns, "dry", classic(sa)), client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), named)
	})
	err := env.Admin.Create(ctx, pod(ns, "again", classic(sa)))
	assertDenied(t, "a pod", err, "ServiceAccount "+ns+"/"+sa+" does not exist", named,
		"kubectl create serviceaccount -n "+ns+" "+sa, "token-projector.io/inject=enabled", "remove the binding")
	assertDenied(t, "a Deployment", env.Admin.Create(ctx, deployment(ns, "deployer", sa)), named)
	assertNoAccount(t, ns, sa)

	// The binding removed, the name is free again: a fresh account.
	if err := env.Admin.Delete(ctx, crb); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "a pod is admitted once the binding is gone", 30*time.Second, func() bool {
		return env.Admin.Create(ctx, pod(ns, fmt.Sprintf("fresh-%d", time.Now().UnixNano()), classic(sa))) == nil
	})
	var fresh corev1.ServiceAccount
	if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: sa}, &fresh); err != nil || fresh.UID == old.UID {
		t.Errorf("the account after the binding went: %v, UID %s (was %s); want a fresh one", err, fresh.UID, old.UID)
	}
}

// TestBindingAppliedBeforeItsAccount is the GitOps case: a RoleBinding
// naming an account that does not exist yet is applied, and a pod and a
// Deployment naming that account right after it (no wait: the webhook's
// cache of bindings may not have it yet; its live list of the namespace's
// RoleBindings does). Both are denied naming the binding and nothing is
// created. When an admin then creates the account and labels it, a pod is
// admitted with the account's token RBAC, as any labelled account's.
func TestBindingAppliedBeforeItsAccount(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	const sa = "app-deployer"
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deploy"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa}}, // the binding's namespace
	}
	if err := env.Admin.Create(ctx, rb); err != nil {
		t.Fatal(err)
	}
	named := "RoleBinding " + ns + "/deploy (grants ClusterRole edit)"
	assertDenied(t, "a pod right after the binding", env.Admin.Create(ctx, pod(ns, "web", classic(sa))), named)
	assertDenied(t, "a Deployment", env.Admin.Create(ctx, deployment(ns, "web", sa)), named)
	assertNoAccount(t, ns, sa)
	assertNoRBAC(t, ns, sa)

	existingAccount(t, ns, sa, map[string]string{mutate.LabelInject: mutate.InjectEnabled})
	testenv.WaitFor(t, "a pod naming the account its admin created", 30*time.Second, func() bool {
		return env.Admin.Create(ctx, pod(ns, fmt.Sprintf("web-%d", time.Now().UnixNano()), classic(sa))) == nil
	})
	assertIdentity(t, ns, sa)
}

// TestAllowedServiceAccounts: a namespace's allowed-service-accounts bounds
// the accounts its pods and workloads may name: one it allows is created
// with its RBAC; another is denied with a 403 naming the pod's annotation,
// the value and the namespace's annotation, and is not created; a
// malformed list denies every pod naming an account.
func TestAllowedServiceAccounts(t *testing.T) {
	ctx := context.Background()
	ns := policyNamespace(t, map[string]string{mutate.AnnotationAllowedServiceAccounts: "app-*, web"})
	if err := env.Admin.Create(ctx, pod(ns, "allowed", classic("app-api"))); err != nil {
		t.Fatal(err)
	}
	assertIdentity(t, ns, "app-api")

	want := []string{`token-projector.io/service-account: "ci-deployer" is not accepted`, "app-*, web",
		"namespace " + ns + "'s " + mutate.AnnotationAllowedServiceAccounts}
	assertDenied(t, "a pod", env.Admin.Create(ctx, pod(ns, "denied", classic("ci-deployer"))), want...)
	assertDenied(t, "a Deployment", env.Admin.Create(ctx, deployment(ns, "deployer", "ci-deployer")), want...)
	assertNoAccount(t, ns, "ci-deployer")

	bad := policyNamespace(t, map[string]string{mutate.AnnotationAllowedServiceAccounts: "app-[a"})
	assertDenied(t, "a pod of a namespace with a malformed list", env.Admin.Create(ctx, pod(bad, "any", classic("app-api"))),
		"namespace "+bad+"'s "+mutate.AnnotationAllowedServiceAccounts, `"app-[a" is not accepted`)
	assertNoAccount(t, bad, "app-api")
}
