package reconcile

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// TestForgedStatusNeverRevivesARevokedAccount: a pod author writes, on a pod
// the webhook never saw (no audience annotation, so not sent to it), the
// status annotation and injected label the webhook writes, claiming the
// webhook created the account "victim" and ensured its RBAC. The namespace
// owner deletes the account, its Role and RoleBinding: revoked. Neither the
// forged pod nor a restart of the webhook (whose reconciler then looks at
// every injected pod) brings any of them back; a control identity in the
// same namespace, whose RoleBinding was deleted while the webhook was down,
// is restored, which shows the reconciler has looked.
func TestForgedStatusNeverRevivesARevokedAccount(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	// The webhook creates victim for a real pod, and ctl for another.
	for _, p := range []*corev1.Pod{pod(ns, "first", "victim"), pod(ns, "control", "ctl")} {
		if err := env.Admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	forged := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forger",
			Labels: map[string]string{mutate.LabelInjected: mutate.InjectedTrue},
			Annotations: map[string]string{mutate.AnnotationStatus: (&mutate.Spec{ServiceAccount: "victim"}).Status("victim",
				mutate.Identity{RBAC: true, ManagedAccount: true})}},
		Spec: corev1.PodSpec{ServiceAccountName: "victim", Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
	if err := env.Admin.Create(ctx, forged); err != nil {
		t.Fatal(err)
	}
	for _, v := range forged.Spec.Volumes {
		if v.Name == mutate.VolumeName {
			t.Fatalf("the forged pod was sent to the webhook and injected; it must carry the claims alone")
		}
	}

	// While the webhook is down, the owner revokes victim (the account, its
	// Role and RoleBinding) and the control loses its RoleBinding.
	stopWebhook(t)
	for _, o := range append(testenv.Identity(ns, "victim"), testenv.Identity(ns, "ctl")[2]) {
		if err := env.Admin.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	startWebhook(t)

	testenv.WaitFor(t, "the control RoleBinding is restored after the restart", 30*time.Second, func() bool {
		return env.Exists(t, testenv.Identity(ns, "ctl")[2])
	})
	// The reconciler's queue empty and idle: every identity the restart
	// enqueued, victim's among them, has been looked at.
	testenv.WaitFor(t, "the reconciler is idle", 30*time.Second, func() bool {
		match := map[string]string{"controller": "token-identities"}
		return testenv.Gauge(t, "workqueue_depth", match) == 0 && testenv.Gauge(t, "controller_runtime_active_workers", match) == 0
	})
	for _, o := range testenv.Identity(ns, "victim") {
		if env.Exists(t, o) {
			t.Errorf("%T %s/%s was re-created on the word of a forged pod", o, ns, o.GetName())
		}
	}
}
