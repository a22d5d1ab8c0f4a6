package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/token-projector/token-projector/pkg/mutate"
)

func workloadRequest(t *testing.T, group, kind string, op admissionv1.Operation, obj any) admission.Request {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-w", Namespace: "demo", Operation: op,
		Kind:   metav1.GroupVersionKind{Group: group, Version: "v1", Kind: kind},
		Object: runtime.RawExtension{Raw: raw},
	}}
}

func podTemplate(annotations map[string]string, sa string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Annotations: annotations},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
}

func TestWorkloadResponses(t *testing.T) {
	ok := map[string]string{mutate.AnnotationAudience: "vault"}
	bad := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "1s"}
	deploy := func(ann map[string]string, sa string) any {
		return appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Template: podTemplate(ann, sa)}}
	}
	cron := batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"}, Spec: batchv1.CronJobSpec{
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate(ok, "cron-sa")}}}}
	// A template whose container takes the variable from a Secret.
	envDeploy := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Template: podTemplate(map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationTokenFileEnv: "vault=VAULT_TOKEN_FILE"}, "web-sa")}}
	envDeploy.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "VAULT_TOKEN_FILE", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "vault"}, Key: "token-file"}}}}
	for _, tc := range []struct {
		name    string
		req     admission.Request
		allowed bool
		code    int32
		message string
		ensured string
	}{
		{name: "template names a new account", req: workloadRequest(t, "apps", "Deployment", admissionv1.Create, deploy(ok, "web-sa")),
			allowed: true, code: http.StatusOK, ensured: "demo/web-sa"},
		{name: "update ensures too", req: workloadRequest(t, "apps", "Deployment", admissionv1.Update, deploy(ok, "web-sa")),
			allowed: true, code: http.StatusOK, ensured: "demo/web-sa"},
		{name: "cronjob template", req: workloadRequest(t, "batch", "CronJob", admissionv1.Create, cron),
			allowed: true, code: http.StatusOK, ensured: "demo/cron-sa"},
		{name: "invalid template denied like a pod", req: workloadRequest(t, "apps", "Deployment", admissionv1.Create, deploy(bad, "")),
			code: http.StatusForbidden, message: `token-projector.io/expiration: "1s" is not accepted`},
		{name: "token-file variable the container sets otherwise denied like a pod", req: workloadRequest(t, "apps", "Deployment", admissionv1.Create, envDeploy),
			code: http.StatusForbidden, message: `token-projector.io/token-file-env: "vault=VAULT_TOKEN_FILE" is not accepted: container "app" already sets VAULT_TOKEN_FILE from valueFrom.secretKeyRef`},
		{name: "no audience skipped", req: workloadRequest(t, "apps", "Deployment", admissionv1.Create, deploy(nil, "web-sa")),
			allowed: true, code: http.StatusOK},
		{name: "other kinds skipped", req: workloadRequest(t, "", "Service", admissionv1.Create, deploy(ok, "web-sa")),
			allowed: true, code: http.StatusOK},
		{name: "no template", req: workloadRequest(t, "apps", "Deployment", admissionv1.Create, map[string]any{"spec": map[string]any{}}),
			code: http.StatusBadRequest, message: "no pod template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ens := &stubEnsurer{}
			resp := (&WorkloadHandler{PodHandler: newHandler(ens)}).Handle(context.Background(), tc.req)
			if err := resp.Complete(tc.req); err != nil {
				t.Fatal(err)
			}
			if resp.Allowed != tc.allowed || resp.Result.Code != tc.code || !strings.Contains(resp.Result.Message, tc.message) {
				t.Fatalf("allowed=%v code=%d %q, want allowed=%v code=%d %q", resp.Allowed, resp.Result.Code, resp.Result.Message, tc.allowed, tc.code, tc.message)
			}
			if len(resp.Patches) != 0 || len(resp.Patch) != 0 {
				t.Errorf("a workload was patched: %v", resp.Patches)
			}
			if got := strings.Join(ens.calls, ","); got != tc.ensured {
				t.Errorf("ensured %q, want %q", got, tc.ensured)
			}
		})
	}
}

// TestWorkloadWritesThatAskNothingNew: controllers' writes (scale,
// finalizers, writes to an object being deleted) that reach the handler
// although the matchConditions keep them away are allowed without reading
// the template's annotations or ensuring anything, even when the template
// is one the webhook would now refuse; they are counted as skipped with
// their reason. A template change is still validated and ensured.
func TestWorkloadWritesThatAskNothingNew(t *testing.T) {
	ok := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "web-sa"}
	// Refused today (expiry below the minimum), e.g. after --max-expiration
	// was lowered: writes that do not touch it must still pass.
	stale := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "web-sa", mutate.AnnotationExpiration: "1s"}
	deploy := func(ann map[string]string, replicas int32, mutateMeta func(*metav1.ObjectMeta)) *appsv1.Deployment {
		d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo"}, Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: podTemplate(ann, "")}}
		if mutateMeta != nil {
			mutateMeta(&d.ObjectMeta)
		}
		return d
	}
	deleting := func(m *metav1.ObjectMeta) { now := metav1.Now(); m.DeletionTimestamp = &now }
	finalizer := func(m *metav1.ObjectMeta) { m.Finalizers = []string{"example.com/hold"} }
	update := func(obj, old any) admission.Request {
		req := workloadRequest(t, "apps", "Deployment", admissionv1.Update, obj)
		raw, err := json.Marshal(old)
		if err != nil {
			t.Fatal(err)
		}
		req.OldObject = runtime.RawExtension{Raw: raw}
		return req
	}
	for _, tc := range []struct {
		name    string
		req     admission.Request
		allowed bool
		reason  string
		ensured string
	}{
		{name: "scale", req: update(deploy(stale, 3, nil), deploy(stale, 1, nil)), allowed: true, reason: reasonTemplateUnchanged},
		{name: "finalizer added", req: update(deploy(stale, 1, finalizer), deploy(stale, 1, nil)), allowed: true, reason: reasonTemplateUnchanged},
		{name: "finalizer removed while deleting", req: update(deploy(stale, 1, deleting), deploy(stale, 1, func(m *metav1.ObjectMeta) { deleting(m); finalizer(m) })),
			allowed: true, reason: reasonDeleting},
		{name: "template changed while deleting", req: update(deploy(stale, 1, deleting), deploy(ok, 1, deleting)), allowed: true, reason: reasonDeleting},
		{name: "template change validated", req: update(deploy(stale, 1, nil), deploy(ok, 1, nil)), reason: reasonInvalid},
		{name: "template change ensured", req: update(deploy(ok, 1, nil), deploy(nil, 1, nil)), allowed: true, reason: reasonEnsured, ensured: "demo/web-sa"},
		{name: "unreadable old object counts as a change", req: func() admission.Request {
			r := update(deploy(ok, 1, nil), nil)
			r.OldObject.Raw = []byte(`{"spec": 1}`)
			return r
		}(), allowed: true, reason: reasonEnsured, ensured: "demo/web-sa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ens := &stubEnsurer{}
			counted := testutil.ToFloat64(admissions.WithLabelValues(resourceWorkload, outcomeOf(tc.reason), tc.reason))
			resp := (&WorkloadHandler{PodHandler: newHandler(ens)}).Handle(context.Background(), tc.req)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed=%v (%s), want %v", resp.Allowed, resp.Result.Message, tc.allowed)
			}
			if got := strings.Join(ens.calls, ","); got != tc.ensured {
				t.Errorf("ensured %q, want %q", got, tc.ensured)
			}
			if got := testutil.ToFloat64(admissions.WithLabelValues(resourceWorkload, outcomeOf(tc.reason), tc.reason)) - counted; got != 1 {
				t.Errorf("admissions{reason=%q} counted %v, want 1", tc.reason, got)
			}
		})
	}
}

func outcomeOf(reason string) string {
	switch reason {
	case reasonInvalid:
		return outcomeDenied
	case reasonEnsured:
		return outcomeUnchanged
	}
	return outcomeSkipped
}
