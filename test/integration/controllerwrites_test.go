package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

// restartWebhook stops the suite's webhook and, if change is not nil,
// starts it again with change applied to its options (same serving port, so
// kube-apiserver reaches the new one). The suite's webhook is back when the
// test ends.
func restartWebhook(t *testing.T, change func(*server.Options)) {
	t.Helper()
	opts := hook.Options
	if err := hook.Stop(); err != nil {
		t.Fatal(err)
	}
	hook = nil
	t.Cleanup(func() {
		if hook != nil {
			if err := hook.Stop(); err != nil {
				t.Error(err)
			}
		}
		var err error
		if hook, err = testenv.StartWebhook(context.Background(), opts, time.Minute); err != nil {
			t.Fatalf("restarting the suite's webhook: %v", err)
		}
	})
	if change == nil {
		return
	}
	changed := opts
	change(&changed)
	var err error
	if hook, err = testenv.StartWebhook(context.Background(), changed, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// annotatedWorkloads are a Deployment, a ReplicaSet it owns (what the
// Deployment controller would create) and a CronJob, whose templates ask
// for a 2h token for account sa.
type annotatedWorkloads struct {
	deploy *appsv1.Deployment
	rs     *appsv1.ReplicaSet
	cron   *batchv1.CronJob
}

func createAnnotatedWorkloads(t *testing.T, ns, sa string) annotatedWorkloads {
	t.Helper()
	ctx := context.Background()
	tmpl := template("", map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h", mutate.AnnotationServiceAccount: sa})
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	w := annotatedWorkloads{
		deploy: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr[int32](1), Selector: selector, Template: tmpl}},
		cron: &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"}, Spec: batchv1.CronJobSpec{
			Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: withRestartNever(tmpl)}}}},
	}
	if err := env.Admin.Create(ctx, w.deploy); err != nil {
		t.Fatal(err)
	}
	w.rs = &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-abc12", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "Deployment", Name: w.deploy.Name, UID: w.deploy.UID, Controller: ptr(true), BlockOwnerDeletion: ptr(true)},
		}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr[int32](1), Selector: selector, Template: tmpl},
	}
	for _, o := range []client.Object{w.rs, w.cron} {
		if err := env.Admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	assertIdentity(t, ns, sa)
	return w
}

// update reads obj, applies change and writes it back with a plain UPDATE,
// as controllers do.
func update[T client.Object](t *testing.T, what string, obj T, change func(T)) {
	t.Helper()
	ctx := context.Background()
	if err := env.Admin.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	change(obj)
	if err := env.Admin.Update(ctx, obj); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// controllerWrites makes the writes of the Deployment controller, the
// garbage collector, kubectl scale and an HPA on w, and fails the test for
// each one refused.
func controllerWrites(t *testing.T, w annotatedWorkloads) {
	t.Helper()
	ctx := context.Background()
	update(t, "scaling the Deployment with a plain UPDATE", w.deploy, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr[int32](3) })

	// kubectl scale and HPAs use the scale subresource.
	scale := &autoscalingv1.Scale{}
	if err := env.Admin.SubResource("scale").Get(ctx, w.deploy, scale); err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 5
	if err := env.Admin.SubResource("scale").Update(ctx, w.deploy, client.WithSubResourceBody(scale)); err != nil {
		t.Errorf("scaling the Deployment through /scale: %v", err)
	}

	// The Deployment controller scales ReplicaSets with plain UPDATEs.
	update(t, "scaling the ReplicaSet", w.rs, func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas = ptr[int32](4) })
	update(t, "orphaning the ReplicaSet (ownerReferences removed)", w.rs, func(rs *appsv1.ReplicaSet) { rs.OwnerReferences = nil })
	update(t, "suspending the CronJob", w.cron, func(c *batchv1.CronJob) { c.Spec.Suspend = ptr(true) })

	const hold = "example.com/hold"
	update(t, "adding a finalizer to the CronJob", w.cron, func(c *batchv1.CronJob) { c.Finalizers = append(c.Finalizers, hold) })
	update(t, "removing the CronJob's finalizer", w.cron, func(c *batchv1.CronJob) {
		c.Finalizers = slices.DeleteFunc(c.Finalizers, func(f string) bool { return f == hold })
	})
	update(t, "adding a finalizer to the Deployment", w.deploy, func(d *appsv1.Deployment) { d.Finalizers = append(d.Finalizers, hold) })

	// Foreground deletion: kube-apiserver marks the Deployment deleted and
	// adds the foregroundDeletion finalizer; the garbage collector (none
	// runs here) then removes finalizers with UPDATEs until it is gone.
	if err := env.Admin.Delete(ctx, w.deploy, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatalf("foreground delete: %v", err)
	}
	update(t, "removing our finalizer from the Deployment being deleted", w.deploy, func(d *appsv1.Deployment) {
		d.Finalizers = slices.DeleteFunc(d.Finalizers, func(f string) bool { return f == hold })
	})
	update(t, "removing foregroundDeletion from the Deployment being deleted", w.deploy, func(d *appsv1.Deployment) {
		d.Finalizers = slices.DeleteFunc(d.Finalizers, func(f string) bool { return f == metav1.FinalizerDeleteDependents })
	})
	testenv.WaitFor(t, "the Deployment is deleted", 30*time.Second, func() bool { return !env.Exists(t, &appsv1.Deployment{ObjectMeta: w.deploy.ObjectMeta}) })
}

// changeExpiration is a template change: it is sent to the webhook.
func changeExpiration(cron *batchv1.CronJob, value string) error {
	ctx := context.Background()
	if err := env.Admin.Get(ctx, client.ObjectKeyFromObject(cron), cron); err != nil {
		return err
	}
	cron.Spec.JobTemplate.Spec.Template.Annotations[mutate.AnnotationExpiration] = value
	return env.Admin.Update(ctx, cron)
}

const badExpiryDenial = `token-projector.io/expiration: "1s" is not accepted`

// TestControllerWritesNeverDependOnTheWebhook: scaling, finalizers,
// ownerReferences and a foreground delete of annotated workloads succeed
// while the webhook would refuse their templates or cannot answer at all;
// template changes are still sent, validated and ensured.
func TestControllerWritesNeverDependOnTheWebhook(t *testing.T) {
	ctx := context.Background()
	t.Run("managed Role tampered", func(t *testing.T) {
		ns, sa := namespace(t, true), "tampered"
		w := createAnnotatedWorkloads(t, ns, sa)
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rbac.Name(sa)}}
		update(t, "tampering with the Role", role, func(r *rbacv1.Role) { r.Rules[0].Verbs = append(r.Rules[0].Verbs, "get") })

		controllerWrites(t, w)

		if err := changeExpiration(w.cron, "1s"); err == nil || !strings.Contains(err.Error(), badExpiryDenial) {
			t.Errorf("template change to a bad expiry: want %q, got %v", badExpiryDenial, err)
		}
		// A valid template change still ensures the identity, and finds
		// the Role changed.
		if err := changeExpiration(w.cron, "3h"); err == nil || !strings.Contains(err.Error(), "Role "+ns+"/"+rbac.Name(sa)) {
			t.Errorf("template change with the Role tampered: want a denial naming the Role, got %v", err)
		}
		if err := env.Admin.Get(ctx, client.ObjectKeyFromObject(role), role); err != nil || !slices.Contains(role.Rules[0].Verbs, "get") {
			t.Errorf("the Role is no longer tampered with (%v): the writes above proved nothing", err)
		}
	})
	t.Run("stricter --max-expiration after a restart", func(t *testing.T) {
		ns := namespace(t, true)
		w := createAnnotatedWorkloads(t, ns, "strict")
		restartWebhook(t, func(o *server.Options) { o.MaxExpiration = time.Hour })
		// The templates ask for 2h, which this webhook now refuses.
		if err := changeExpiration(w.cron, "2h"); err != nil {
			t.Fatalf("an unchanged template: %v", err)
		}

		controllerWrites(t, w)

		if err := changeExpiration(w.cron, "1s"); err == nil || !strings.Contains(err.Error(), badExpiryDenial) {
			t.Errorf("template change to a bad expiry: want %q, got %v", badExpiryDenial, err)
		}
		if err := changeExpiration(w.cron, "90m"); err == nil || !strings.Contains(err.Error(), `token-projector.io/expiration: "90m" is not accepted`) {
			t.Errorf("template change beyond the new maximum: want a denial, got %v", err)
		}
	})
	t.Run("webhook stopped", func(t *testing.T) {
		ns := namespace(t, true)
		w := createAnnotatedWorkloads(t, ns, "stopped")
		restartWebhook(t, nil)

		controllerWrites(t, w)

		// Template changes are still sent: with failurePolicy Fail and no
		// webhook, they are refused rather than let through unchecked.
		if err := changeExpiration(w.cron, "3h"); err == nil || !strings.Contains(err.Error(), "workloads.token-projector.io") {
			t.Errorf("template change with the webhook stopped: want a webhook failure, got %v", err)
		}
	})
}
