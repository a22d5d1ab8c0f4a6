package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
)

func template(sa string, annotations map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: annotations},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "app", Image: "nginx:1.27"}},
		},
	}
}

// TestDeploymentNamingNewAccount is the GitOps case: a Deployment whose
// template names a ServiceAccount that does not exist yet. Admitting the
// Deployment ensures the account, so the pod its ReplicaSet creates passes
// the ServiceAccount plugin and is mutated.
func TestDeploymentNamingNewAccount(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	tmpl := template("deploy-sa", map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "30m"})
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: tmpl,
		},
	}
	if err := env.Admin.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(d.Spec.Template.Spec.Volumes, tmpl.Spec.Volumes) || d.Spec.Template.Annotations[mutate.AnnotationStatus] != "" {
		t.Errorf("the Deployment's template was rewritten: %+v", d.Spec.Template)
	}
	assertIdentity(t, ns, "deploy-sa")

	// What the Deployment and ReplicaSet controllers would create (none run here).
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-abc12", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr(true)},
		}},
		Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
	if err := env.Admin.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, GenerateName: "web-abc12-", Labels: rs.Spec.Template.Labels, Annotations: rs.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr(true)}},
		},
		Spec: rs.Spec.Template.Spec,
	}
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatalf("the ReplicaSet's pod was rejected: %v", err)
	}
	if len(tokenVolumes(p)) != 1 || p.Spec.ServiceAccountName != "deploy-sa" || tokenMounts(p.Spec.Containers[0]) != 1 {
		t.Errorf("the ReplicaSet's pod was not mutated: %+v", p.Spec)
	}
}

func TestWorkloadDenials(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	bad := template("", map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h30x"})
	for _, obj := range []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: bad}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: batchv1.CronJobSpec{
			Schedule: "@hourly", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: withRestartNever(bad)}}}},
	} {
		err := env.Admin.Create(ctx, obj)
		if err == nil || !strings.Contains(err.Error(), `token-projector.io/expiration: "2h30x" is not accepted`) {
			t.Errorf("%T with a bad template annotation: want the pod denial, got %v", obj, err)
		}
	}
}

func TestCronJobEnsuresAccount(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	tmpl := withRestartNever(template("", map[string]string{mutate.AnnotationAudience: "sts", mutate.AnnotationServiceAccount: "cron-sa"}))
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"}, Spec: batchv1.CronJobSpec{
		Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}
	if err := env.Admin.Create(ctx, cj); err != nil {
		t.Fatal(err)
	}
	assertIdentity(t, ns, "cron-sa")
}

// TestEvents checks that a denial and each created object are reported as
// Events in the namespace.
func TestEvents(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	if err := env.Admin.Create(ctx, pod(ns, "evented", classic("evented"))); err != nil {
		t.Fatal(err)
	}
	bad := pod(ns, "refused", map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "1s"})
	if err := env.Admin.Create(ctx, bad); err == nil {
		t.Fatal("pod with a 1s expiry admitted")
	}
	want := map[string]bool{
		"Created/ServiceAccount/evented":           false,
		"Created/Role/evented-create-token":        false,
		"Created/RoleBinding/evented-create-token": false,
		"TokenInjectionDenied/Pod/refused":         false,
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := env.Admin.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			key := e.Reason + "/" + e.Regarding.Kind + "/" + e.Regarding.Name
			if _, ok := want[key]; ok && e.ReportingController == "token-projector" {
				want[key] = true
			}
		}
		for _, seen := range want {
			if !seen {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("events seen: %v (%v)", want, err)
	}
}

// TestDryRunDenialRecordsNoEvent: a dry-run request writes nothing, so its
// denial records no Event. The same denial for real, made after it, does;
// Events leave the webhook's recorder in order, so once the real one is
// stored a dry-run one would have been too.
func TestDryRunDenialRecordsNoEvent(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	bad := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "1s"}
	if err := env.Admin.Create(ctx, pod(ns, "dry-refused", bad), client.DryRunAll); err == nil {
		t.Fatal("dry-run pod with a 1s expiry admitted")
	}
	if err := env.Admin.Create(ctx, pod(ns, "refused", bad)); err == nil {
		t.Fatal("pod with a 1s expiry admitted")
	}
	var reasons map[string]bool
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := env.Admin.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		reasons = map[string]bool{}
		for _, e := range list.Items {
			reasons[e.Reason+"/"+e.Regarding.Name] = true
		}
		return reasons["TokenInjectionDenied/refused"], nil
	})
	if err != nil {
		t.Fatalf("no Event for the real denial: %v", err)
	}
	if reasons["TokenInjectionDenied/dry-refused"] {
		t.Errorf("the dry-run denial recorded an Event: %v", reasons)
	}
}

func withRestartNever(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	t.Spec.RestartPolicy = corev1.RestartPolicyNever
	return t
}

func ptr[T any](v T) *T { return &v }
