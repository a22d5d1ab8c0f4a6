package reconcile

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/test/testenv"
)

// collectWithin bounds how long collection may take past the TTL.
const collectWithin = ttl + grace + 30*time.Second

// rejectLabel marks pods that a ValidatingAdmissionPolicy, a later
// admission step than the webhook, rejects.
const rejectLabel = "test.token-projector.io/reject"

// rejectLater installs the policy once and waits until it is enforced.
func rejectLater(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	fail := admissionregistrationv1.Fail
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "reject-labelled-pods"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!has(object.metadata.labels) || !('" + rejectLabel + "' in object.metadata.labels)",
				Message:    "rejected by a later admission step",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reject-labelled-pods"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policy.Name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := env.Admin.Create(ctx, o); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	// A probe pod without our annotation, in a namespace of its own.
	probeNS := namespace(t)
	testenv.WaitFor(t, "the policy is enforced", 30*time.Second, func() bool {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: probeNS, GenerateName: "probe-", Labels: map[string]string{rejectLabel: "yes"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
		}
		err := env.Admin.Create(ctx, p)
		return err != nil && strings.Contains(err.Error(), "rejected by a later admission step")
	})
}

// admitThenReject creates a pod naming sa that the webhook admits (ensuring
// its identity) and the policy then rejects.
func admitThenReject(t *testing.T, ns, sa string) {
	t.Helper()
	p := pod(ns, "", sa)
	p.GenerateName = "rejected-"
	p.Labels = map[string]string{rejectLabel: "yes"}
	err := env.Admin.Create(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "rejected by a later admission step") {
		t.Fatalf("want the policy's rejection, got %v", err)
	}
	for _, o := range testenv.Identity(ns, sa) {
		if !env.Exists(t, o) {
			t.Fatalf("%T %s: the webhook did not ensure it before the rejection", o, o.GetName())
		}
	}
}

// unmanaged creates objects of an identity by hand, without our label, the
// same as the webhook would make them otherwise.
func unmanaged(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		o.SetLabels(nil)
		if err := env.Admin.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
}

func gone(t *testing.T, objs ...client.Object) func() bool {
	return func() bool {
		for _, o := range objs {
			if env.Exists(t, o) {
				return false
			}
		}
		return true
	}
}

// TestCollectsWhatRejectedPodsLeft: a pod the webhook admitted but a later
// admission step rejected leaves its identity behind; after the TTL the
// managed objects are deleted, and nothing without our label is touched,
// not even a ServiceAccount the webhook only used.
func TestCollectsWhatRejectedPodsLeft(t *testing.T) {
	rejectLater(t)
	ctx := context.Background()
	ns := namespace(t)

	// By hand, unlabelled: an identity of the same shape. And an account
	// the rejected pod names, that its owner labelled for token RBAC (the
	// webhook creates only its Role and binding).
	unmanaged(t, rbac.ServiceAccount(ns, "hand"), rbac.Role(ns, "hand"), rbac.RoleBinding(ns, "hand"))
	if err := env.Admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "builder",
		Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	admitThenReject(t, ns, "left")
	admitThenReject(t, ns, "builder")

	left := testenv.Identity(ns, "left")
	testenv.WaitFor(t, "the rejected pod's identity is collected", collectWithin, gone(t, left...))
	if took := time.Since(start); took < ttl {
		t.Errorf("collected after %s, before the TTL of %s", took, ttl)
	}
	builder := testenv.Identity(ns, "builder")
	testenv.WaitFor(t, "builder's Role and RoleBinding are collected", collectWithin, gone(t, builder[1:]...))

	for _, o := range append(testenv.Identity(ns, "hand"), builder[0]) {
		if !env.Exists(t, o) {
			t.Errorf("%T %s/%s without our label was deleted", o, ns, o.GetName())
		}
	}
	var sa corev1.ServiceAccount
	if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "builder"}, &sa); err != nil || rbac.IsManaged(&sa) {
		t.Errorf("builder's own ServiceAccount: %v, labels %v", err, sa.Labels)
	}
}

// TestKeepsIdentitiesInUse: a running pod and a workload template scaled to
// zero both keep their identities past the TTL; each is collected a TTL
// after its last user goes, not before.
func TestKeepsIdentitiesInUse(t *testing.T) {
	rejectLater(t)
	ctx := context.Background()
	ns := namespace(t)

	runner := pod(ns, "runner", "inuse")
	if err := env.Admin.Create(ctx, runner); err != nil {
		t.Fatal(err)
	}
	admitThenReject(t, ns, "scaled")
	zero := int32(0)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idle"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "idle"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "idle"}},
				Spec:       corev1.PodSpec{ServiceAccountName: "scaled", Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
			},
		},
	}
	if err := env.Admin.Create(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	// A control identity with no user: once it is collected, the TTL has
	// passed for the others too.
	admitThenReject(t, ns, "control")
	testenv.WaitFor(t, "the control identity is collected", collectWithin, gone(t, testenv.Identity(ns, "control")...))
	for _, sa := range []string{"inuse", "scaled"} {
		for _, o := range testenv.Identity(ns, sa) {
			if !env.Exists(t, o) {
				t.Fatalf("%T %s/%s was collected while in use", o, ns, o.GetName())
			}
		}
	}

	for _, c := range []struct {
		sa   string
		user client.Object
	}{{"inuse", runner}, {"scaled", deploy}} {
		released := time.Now()
		if err := env.Admin.Delete(ctx, c.user); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, c.sa+"'s identity is collected after its last user", collectWithin, gone(t, testenv.Identity(ns, c.sa)...))
		if took := time.Since(released); took < ttl {
			t.Errorf("%s collected %s after its last user went, before the TTL of %s", c.sa, took, ttl)
		}
	}
}

// TestRestoresWhilePodsUseIt: deleting a managed Role or RoleBinding while
// an injected pod uses its account brings it back as the webhook makes it;
// deleting the managed account itself revokes it: it never comes back, nor
// do its Role and RoleBinding. An object of the name that is not ours is
// never overwritten; an opted-out namespace gets no writes.
func TestRestoresWhilePodsUseIt(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	for _, p := range []*corev1.Pod{pod(ns, "user", "keep"), pod(ns, "control", "ctl"), pod(ns, "revoked-user", "revoked")} {
		if err := env.Admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	before := testenv.Counter(t, "token_projector_restored_total", nil)
	for _, o := range append(testenv.Identity(ns, "keep")[1:], testenv.Identity(ns, "revoked")...) {
		if err := env.Admin.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "the Role and RoleBinding are restored", 30*time.Second, func() bool {
		for _, o := range testenv.Identity(ns, "keep") {
			if !env.Exists(t, o) || !rbac.IsManaged(o) {
				return false
			}
		}
		return true
	})
	var role rbacv1.Role
	if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: rbac.Name("keep")}, &role); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rbac.Role(ns, "keep").Rules, role.Rules); diff != "" {
		t.Errorf("restored Role rules (-want +got):\n%s", diff)
	}
	if got := testenv.Counter(t, "token_projector_restored_total", nil) - before; got != 2 {
		t.Errorf("restored %v objects by the webhook's count, want 2", got)
	}
	// keep's restore shows the reconciler has looked at the pods of this
	// namespace; a control RoleBinding deleted now and restored shows it has
	// looked again since: the revoked account must still be gone.
	if err := env.Admin.Delete(ctx, testenv.Identity(ns, "ctl")[2]); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the control RoleBinding is restored", 30*time.Second, func() bool { return env.Exists(t, testenv.Identity(ns, "ctl")[2]) })
	for _, o := range testenv.Identity(ns, "revoked") {
		if env.Exists(t, o) {
			t.Errorf("%T %s/%s came back after its managed account was deleted while a pod used it", o, ns, o.GetName())
		}
	}

	// Taken over by hand (label removed, rules changed): no longer ours, so
	// never overwritten, though the pod still runs as the account.
	foreign := role.DeepCopy()
	foreign.Labels = nil
	foreign.Rules[0].Verbs = []string{"create", "get"}
	if err := env.Admin.Update(ctx, foreign); err != nil {
		t.Fatal(err)
	}

	// Opted out: deleting the RoleBinding is final.
	outNS := namespace(t)
	if err := env.Admin.Create(ctx, pod(outNS, "user", "out")); err != nil {
		t.Fatal(err)
	}
	var nsObj corev1.Namespace
	if err := env.Admin.Get(ctx, client.ObjectKey{Name: outNS}, &nsObj); err != nil {
		t.Fatal(err)
	}
	delete(nsObj.Labels, mutate.LabelInject)
	if err := env.Admin.Update(ctx, &nsObj); err != nil {
		t.Fatal(err)
	}
	// The namespace label and the RoleBinding reach the webhook through
	// different informers, so the first delete may still meet a cache that
	// has the namespace opted in. A control RoleBinding deleted after it, once
	// restored, shows the reconciler has seen the delete; the opted-out one
	// must then stay gone. Up to three rounds, each with a fresh control:
	// a restore in every round is a failure.
	outGone := false
	for round := 0; round < 3 && !outGone; round++ {
		outRB := testenv.Identity(outNS, "out")[2]
		if err := env.Admin.Delete(ctx, outRB); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		control := testenv.Identity(ns, "ctl")[2]
		if err := env.Admin.Delete(ctx, control); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "the control RoleBinding is restored", 30*time.Second, func() bool { return env.Exists(t, testenv.Identity(ns, "ctl")[2]) })
		outGone = !env.Exists(t, testenv.Identity(outNS, "out")[2])
	}

	var got rbacv1.Role
	if err := env.Admin.Get(ctx, client.ObjectKeyFromObject(foreign), &got); err != nil || rbac.IsManaged(&got) || len(got.Rules[0].Verbs) != 2 {
		t.Errorf("the foreign Role was overwritten: %+v, %v", got, err)
	}
	if !outGone {
		t.Errorf("RoleBinding restored in a namespace that opted out")
	}
}

// TestNeverRecreatesAnAccountItDidNotCreate: an account its owner labelled
// got its RBAC from the webhook; the owner then deletes the account, which
// revokes it. The reconciler, looking at the identity again (its
// RoleBinding deleted too), re-creates neither, while it does restore a
// managed RoleBinding deleted beside it.
func TestNeverRecreatesAnAccountItDidNotCreate(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	if err := env.Admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "owned",
		Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{pod(ns, "user", "owned"), pod(ns, "control", "ctl")} {
		if err := env.Admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	owned := testenv.Identity(ns, "owned")
	for _, o := range owned {
		if !env.Exists(t, o) {
			t.Fatalf("%T %s: the labelled account did not get its identity", o, o.GetName())
		}
	}
	if err := env.Admin.Delete(ctx, owned[0]); err != nil {
		t.Fatal(err)
	}
	// Each round deletes the owned account's RoleBinding (a managed object,
	// so the reconciler looks at the identity), then a control's managed
	// RoleBinding; once the control is restored, the reconciler has had
	// its look. Re-creating the owned account in every round is a failure.
	recreated := true
	for round := 0; round < 3 && recreated; round++ {
		if err := env.Admin.Delete(ctx, testenv.Identity(ns, "owned")[2]); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if err := env.Admin.Delete(ctx, testenv.Identity(ns, "ctl")[2]); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "the control RoleBinding is restored", 30*time.Second, func() bool {
			return env.Exists(t, testenv.Identity(ns, "ctl")[2])
		})
		recreated = env.Exists(t, testenv.Identity(ns, "owned")[0]) || env.Exists(t, testenv.Identity(ns, "owned")[2])
	}
	if recreated {
		t.Errorf("the reconciler re-created an account it did not create, or its RoleBinding")
	}
}
