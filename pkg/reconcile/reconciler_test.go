package reconcile

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// The API server's behaviour (preconditions, label selectors, the real
// Ensurer) is exercised in test/reconcile; these tests pin the decisions.

type recordingEnsurer struct{ calls []string }

func (r *recordingEnsurer) Restore(_ context.Context, ns, sa string) (rbac.Result, error) {
	r.calls = append(r.calls, ns+"/"+sa)
	return rbac.Result{}, nil
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func created(o client.Object, at time.Time) client.Object {
	o.SetCreationTimestamp(metav1.NewTime(at))
	return o
}

func fakeClient(objs ...client.Object) client.Client {
	b := fake.NewClientBuilder().WithObjects(objs...).
		WithIndex(&corev1.Pod{}, indexPodAccount, func(o client.Object) []string { return []string{podAccount(&o.(*corev1.Pod).Spec)} }).
		WithIndex(&corev1.Pod{}, "spec.serviceAccountName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.ServiceAccountName} })
	for _, k := range workloadKinds {
		b = b.WithIndex(k.obj(), indexTemplateAccount, func(o client.Object) []string { return templateAccounts(k.template(o)) })
	}
	return b.Build()
}

func optedIn(ns string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
}

// injectedPod is a pod the webhook injected, running as sa, as the pod
// cache holds it (labelled, trimmed to its account).
func injectedPod(ns, sa string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p-" + sa, Labels: map[string]string{mutate.LabelInjected: mutate.InjectedTrue}},
		Spec:       corev1.PodSpec{ServiceAccountName: sa},
	}
}

// forgedPod is a pod whose author wrote, by hand, the status and label the
// webhook writes, claiming the webhook created sa and ensured its RBAC.
func forgedPod(ns, sa string) *corev1.Pod {
	p := injectedPod(ns, sa)
	p.Name = "forged-" + sa
	p.Annotations = map[string]string{mutate.AnnotationStatus: (&mutate.Spec{ServiceAccount: sa}).Status(sa, mutate.Identity{RBAC: true, ManagedAccount: true})}
	return p
}

func identity(ns, sa string, at time.Time) []client.Object {
	return []client.Object{created(rbac.ServiceAccount(ns, sa), at), created(rbac.Role(ns, sa), at), created(rbac.RoleBinding(ns, sa), at)}
}

// labelledAccount is an account its owner labelled for token RBAC.
func labelledAccount(ns, sa string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa, Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
}

func foreignAccount(ns, sa string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}
}

func request(ns, sa string) ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: sa}}
}

func present(t *testing.T, c client.Client, objs ...client.Object) []bool {
	t.Helper()
	var out []bool
	for _, o := range objs {
		err := c.Get(context.Background(), client.ObjectKeyFromObject(o), o.DeepCopyObject().(client.Object))
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		out = append(out, err == nil)
	}
	return out
}

// TestCollectsOnlyAfterTTLAndOnlyOurs: an identity unused for the TTL loses
// its RoleBinding first and, a grace period later, its Role and
// ServiceAccount; nothing without our label is touched.
func TestCollectsOnlyAfterTTLAndOnlyOurs(t *testing.T) {
	ctx := context.Background()
	now := epoch.Add(2 * time.Hour)
	ours := identity("demo", "left", epoch)
	theirs := []client.Object{created(rbac.ServiceAccount("demo", "hand"), epoch)}
	theirs[0].SetLabels(nil)
	c := fakeClient(append(append(ours, theirs...), optedIn("demo"))...)
	r := &Reconciler{Cache: c, Live: c, Writer: c, Ensurer: &recordingEnsurer{}, TTL: time.Hour, CollectGrace: time.Minute, Now: func() time.Time { return now }}
	r.started = epoch

	// Used 40 minutes ago: 20 minutes to go.
	r.lastUsed = map[types.NamespacedName]time.Time{{Namespace: "demo", Name: "left"}: now.Add(-40 * time.Minute)}
	res, err := r.Reconcile(ctx, request("demo", "left"))
	if err != nil || res.RequeueAfter != 20*time.Minute {
		t.Fatalf("before the TTL: %+v, %v; want a requeue in 20m", res, err)
	}
	if got := present(t, c, ours...); !cmp.Equal(got, []bool{true, true, true}) {
		t.Fatalf("deleted before the TTL: %v", got)
	}

	now = now.Add(20 * time.Minute)
	res, err = r.Reconcile(ctx, request("demo", "left"))
	if err != nil || res.RequeueAfter != time.Minute {
		t.Fatalf("at the TTL: %+v, %v; want a requeue after the grace of 1m", res, err)
	}
	if got := present(t, c, ours...); !cmp.Equal(got, []bool{true, true, false}) {
		t.Fatalf("first step: present %v, want only the RoleBinding deleted", got)
	}
	now = now.Add(30 * time.Second)
	if res, err := r.Reconcile(ctx, request("demo", "left")); err != nil || res.RequeueAfter != 30*time.Second {
		t.Fatalf("within the grace: %+v, %v; want a requeue in 30s", res, err)
	}
	now = now.Add(30 * time.Second)
	if _, err := r.Reconcile(ctx, request("demo", "left")); err != nil {
		t.Fatal(err)
	}
	if got := present(t, c, ours...); !cmp.Equal(got, []bool{false, false, false}) {
		t.Errorf("after the grace, present: %v", got)
	}
	if _, err := r.Reconcile(ctx, request("demo", "hand")); err != nil {
		t.Fatal(err)
	}
	if !present(t, c, theirs...)[0] {
		t.Errorf("an unlabelled ServiceAccount was deleted")
	}
	if n := r.tracked(); n != 0 {
		t.Errorf("the reconciler still tracks %d identities after collecting them", n)
	}
}

// TestAdmissionElsewhereStopsCollection: a replica other than the leader
// admits a pod for an identity whose RoleBinding collection has just
// deleted: it creates the RoleBinding again (its cache misses it), and a pod
// admitted just before the first step reaches the API server within the
// grace. Either stops the collection, though the leader saw neither
// admission.
func TestAdmissionElsewhereStopsCollection(t *testing.T) {
	ctx := context.Background()
	for name, admittedElsewhere := range map[string]func(c client.Client) error{
		"RoleBinding created again": func(c client.Client) error { return c.Create(ctx, rbac.RoleBinding("demo", "busy")) },
		"pod in flight stored": func(c client.Client) error {
			return c.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "late"}, Spec: corev1.PodSpec{ServiceAccountName: "busy"}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			now := epoch.Add(2 * time.Hour)
			c := fakeClient(append(identity("demo", "busy", epoch), optedIn("demo"))...)
			r := &Reconciler{Cache: c, Live: c, Writer: c, Ensurer: &recordingEnsurer{}, TTL: time.Hour, CollectGrace: time.Minute, Now: func() time.Time { return now }}
			r.started = epoch
			if _, err := r.Reconcile(ctx, request("demo", "busy")); err != nil {
				t.Fatal(err)
			}
			if got := present(t, c, identity("demo", "busy", epoch)...); !cmp.Equal(got, []bool{true, true, false}) {
				t.Fatalf("first step: present %v, want only the RoleBinding deleted", got)
			}
			if err := admittedElsewhere(c); err != nil {
				t.Fatal(err)
			}
			now = now.Add(time.Minute)
			if _, err := r.Reconcile(ctx, request("demo", "busy")); err != nil {
				t.Fatal(err)
			}
			if got := present(t, c, identity("demo", "busy", epoch)[:2]...); !cmp.Equal(got, []bool{true, true}) {
				t.Errorf("collected although another replica admitted a pod for it: ServiceAccount and Role present %v", got)
			}
		})
	}
}

func TestUsersKeepIdentities(t *testing.T) {
	ctx := context.Background()
	now := epoch.Add(24 * time.Hour)
	zero := int32(0)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "idle"},
		Spec: appsv1.DeploymentSpec{Replicas: &zero, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{mutate.AnnotationServiceAccount: "scaled"}},
		}},
	}
	objs := []client.Object{optedIn("demo"), injectedPod("demo", "running"), deploy}
	objs = append(objs, identity("demo", "running", epoch)...)
	objs = append(objs, identity("demo", "scaled", epoch)...)
	c := fakeClient(objs...)
	ens := &recordingEnsurer{}
	r := &Reconciler{Cache: c, Live: c, Writer: c, Ensurer: ens, TTL: time.Hour, Now: func() time.Time { return now }}
	r.started = epoch
	for _, sa := range []string{"running", "scaled"} {
		res, err := r.Reconcile(ctx, request("demo", sa))
		if err != nil || res.RequeueAfter != 0 {
			t.Errorf("%s: %+v, %v", sa, res, err)
		}
		if got := present(t, c, identity("demo", sa, epoch)...); !cmp.Equal(got, []bool{true, true, true}) {
			t.Errorf("%s in use, but present: %v", sa, got)
		}
	}
	if len(ens.calls) != 0 {
		t.Errorf("complete identities were ensured again: %v", ens.calls)
	}
}

// TestRestoresOnlyEligibleAccountsThatExist: what is restored is decided by
// the account on the API server, never by the pods that run as it. An
// injected pod makes the reconciler look; it restores the Role and
// RoleBinding of an account the webhook created or its owner labelled, in
// an opted-in namespace, and nothing for an account that is foreign or
// gone, however the pod's annotations and labels were forged.
func TestRestoresOnlyEligibleAccountsThatExist(t *testing.T) {
	ctx := context.Background()
	out := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "out"}}
	objs := []client.Object{optedIn("demo"), out,
		// Managed, its RoleBinding deleted: restored.
		rbac.ServiceAccount("demo", "managed"), rbac.Role("demo", "managed"), injectedPod("demo", "managed"),
		// Labelled by its owner, never given RBAC yet: restored.
		labelledAccount("demo", "labelled"), injectedPod("demo", "labelled"),
		// Complete: nothing to do.
		injectedPod("demo", "complete"),
		// Someone else's account, with a pod claiming the webhook created it.
		foreignAccount("demo", "foreign"), forgedPod("demo", "foreign"),
		// Deleted by its owner (revoked), with the same forged claim.
		forgedPod("demo", "revoked"),
		// Opted out.
		rbac.ServiceAccount("out", "managed"), injectedPod("out", "managed"),
	}
	objs = append(objs, identity("demo", "complete", epoch)...)
	c := fakeClient(objs...)
	ens := &recordingEnsurer{}
	r := &Reconciler{Cache: c, Live: c, Writer: c, Ensurer: ens}
	for _, req := range []ctrl.Request{request("demo", "managed"), request("demo", "labelled"), request("demo", "complete"),
		request("demo", "foreign"), request("demo", "revoked"), request("out", "managed")} {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"demo/managed", "demo/labelled"}; !cmp.Equal(ens.calls, want) {
		t.Errorf("restored %v, want %v", ens.calls, want)
	}
}

// TestForgetsWhatItNeedNotTrack: what the reconciler remembers per identity
// goes once the identity has nothing left to collect, or collection is off,
// so that its memory follows the managed identities, not every account a
// pod ever named.
func TestForgetsWhatItNeedNotTrack(t *testing.T) {
	ctx := context.Background()
	for _, ttl := range []time.Duration{0, time.Hour} {
		c := fakeClient(optedIn("demo"))
		r := &Reconciler{Cache: c, Live: c, Writer: c, Ensurer: &recordingEnsurer{}, TTL: ttl}
		for i := range 100 {
			id := types.NamespacedName{Namespace: "demo", Name: fmt.Sprintf("gone-%d", i)}
			r.touch(id) // a pod of it came and went
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: id}); err != nil {
				t.Fatal(err)
			}
		}
		if n := r.tracked(); n != 0 {
			t.Errorf("TTL %s: %d identities tracked after their pods and objects went, want 0", ttl, n)
		}
	}
}

// TestLiveWorkloadKeepsIdentity: a workload the cache has not seen yet, but
// the API server has, stops the delete.
func TestLiveWorkloadKeepsIdentity(t *testing.T) {
	ctx := context.Background()
	now := epoch.Add(24 * time.Hour)
	cache := fakeClient(append(identity("demo", "fresh", epoch), optedIn("demo"))...)
	live := fakeClient(&batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "nightly"},
		Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{ServiceAccountName: "fresh"},
		}}}},
	})
	r := &Reconciler{Cache: cache, Live: live, Writer: cache, Ensurer: &recordingEnsurer{}, TTL: time.Hour, Now: func() time.Time { return now }}
	r.started = epoch
	if _, err := r.Reconcile(ctx, request("demo", "fresh")); err != nil {
		t.Fatal(err)
	}
	if got := present(t, cache, identity("demo", "fresh", epoch)...); !cmp.Equal(got, []bool{true, true, true}) {
		t.Errorf("deleted while a live CronJob names it: present %v", got)
	}
}

func TestTrimPod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "p", UID: "u", Labels: map[string]string{"a": "b"},
			Annotations: map[string]string{mutate.AnnotationStatus: "{}", "other": "x"}},
		Spec: corev1.PodSpec{DeprecatedServiceAccount: "old", Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
	got, err := TrimPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "p", UID: "u"},
		Spec:       corev1.PodSpec{ServiceAccountName: "old"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTemplateAccountsAndRBACNames(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{mutate.AnnotationServiceAccount: "app"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "default"},
	}
	if got := templateAccounts(tmpl); !cmp.Equal(got, []string{"app"}) {
		t.Errorf("templateAccounts = %v", got)
	}
	for name, want := range map[string][]string{"app-create-token": {"app"}, "-create-token": nil, "other": nil} {
		if got := accountOfRBAC(name); !cmp.Equal(got, want) {
			t.Errorf("accountOfRBAC(%q) = %v, want %v", name, got, want)
		}
	}
}
