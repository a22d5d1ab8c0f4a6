package reconcile

import (
	"context"
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

func admittedPod(ns, sa string, withRBAC bool) *corev1.Pod {
	return admittedPodAs(ns, sa, mutate.Identity{RBAC: withRBAC, ManagedAccount: withRBAC})
}

// admittedPodAs is a pod the webhook admitted with id ensured for sa.
func admittedPodAs(ns, sa string, id mutate.Identity) *corev1.Pod {
	status := (&mutate.Spec{ServiceAccount: sa}).Status(sa, id)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p-" + sa, Annotations: map[string]string{mutate.AnnotationStatus: status}},
		Spec:       corev1.PodSpec{ServiceAccountName: sa},
	}
}

func identity(ns, sa string, at time.Time) []client.Object {
	return []client.Object{created(rbac.ServiceAccount(ns, sa), at), created(rbac.Role(ns, sa), at), created(rbac.RoleBinding(ns, sa), at)}
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

func TestCollectsOnlyAfterTTLAndOnlyOurs(t *testing.T) {
	ctx := context.Background()
	now := epoch.Add(2 * time.Hour)
	ours := identity("demo", "left", epoch)
	theirs := []client.Object{created(rbac.ServiceAccount("demo", "hand"), epoch)}
	theirs[0].SetLabels(nil)
	c := fakeClient(append(append(ours, theirs...), optedIn("demo"))...)
	r := &Reconciler{Cache: c, Live: c, Writer: c, Ensurer: &recordingEnsurer{}, TTL: time.Hour, Now: func() time.Time { return now }}
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
	if _, err := r.Reconcile(ctx, request("demo", "left")); err != nil {
		t.Fatal(err)
	}
	if got := present(t, c, ours...); !cmp.Equal(got, []bool{false, false, false}) {
		t.Errorf("after the TTL, present: %v", got)
	}
	if _, err := r.Reconcile(ctx, request("demo", "hand")); err != nil {
		t.Fatal(err)
	}
	if !present(t, c, theirs...)[0] {
		t.Errorf("an unlabelled ServiceAccount was deleted")
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
	objs := []client.Object{optedIn("demo"), admittedPod("demo", "running", true), deploy}
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

func TestRestoresOnlyForAdmittedPodsInOptedInNamespaces(t *testing.T) {
	ctx := context.Background()
	out := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "out"}}
	c := fakeClient(optedIn("demo"), out,
		admittedPod("demo", "admitted", true), admittedPod("demo", "volume-only", false), admittedPod("out", "admitted", true))
	ens := &recordingEnsurer{}
	r := &Reconciler{Cache: c, Live: c, Writer: c, Ensurer: ens}
	for _, req := range []ctrl.Request{request("demo", "admitted"), request("demo", "volume-only"), request("out", "admitted")} {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"demo/admitted"}; !cmp.Equal(ens.calls, want) {
		t.Errorf("ensured %v, want %v", ens.calls, want)
	}
}

// TestRecreatesOnlyAccountsTheWebhookCreated: a pod's status decides whether
// a missing account may come back. An account its owner labelled (status
// without managedServiceAccount, as every status written before it existed
// reads) only gets its RBAC restored while it exists.
func TestRecreatesOnlyAccountsTheWebhookCreated(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(optedIn("demo"),
		admittedPodAs("demo", "created", mutate.Identity{RBAC: true, ManagedAccount: true}),
		admittedPodAs("demo", "labelled", mutate.Identity{RBAC: true}))
	ens := &recordingEnsurer{}
	r := &Reconciler{Cache: c, Live: c, Writer: c, Ensurer: ens}
	for _, sa := range []string{"created", "labelled"} {
		if _, err := r.Reconcile(ctx, request("demo", sa)); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"demo/created", "demo/labelled"}; !cmp.Equal(ens.calls, want) {
		t.Errorf("restores %v, want %v", ens.calls, want)
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
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "p", UID: "u", Annotations: map[string]string{mutate.AnnotationStatus: "{}"}},
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
