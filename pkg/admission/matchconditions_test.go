package admission

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/version"
	k8sadmission "k8s.io/apiserver/pkg/admission"
	celplugin "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"
)

// shippedWebhooks are the webhooks of config/webhook/manifests.yaml (the
// chart's files/webhook.yaml is the same file), by clientConfig path.
func shippedWebhooks(t *testing.T) map[string]*admissionregistrationv1.MutatingWebhook {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatal(err)
	}
	out := map[string]*admissionregistrationv1.MutatingWebhook{}
	for i := range cfg.Webhooks {
		out[*cfg.Webhooks[i].ClientConfig.Service.Path] = &cfg.Webhooks[i]
	}
	return out
}

// celCase is one admission as kube-apiserver would evaluate the
// matchConditions for it: object and oldObject are YAML (oldObject "" is
// null, as on CREATE), or typed objects converted as kube-apiserver does.
type celCase struct {
	name        string
	op          k8sadmission.Operation
	object, old string
	typed       runtime.Object // instead of object
	send        bool
}

// TestMatchConditions evaluates the shipped matchConditions with
// kube-apiserver's own CEL library (the compiler, environment and matcher of
// its webhook admission plugin) on objects a controller, a GitOps tool or a
// broken client may send, and checks that no expression ever errors (under
// failurePolicy Fail an error rejects the write) and that only what the
// webhook has to see is sent. For the workloads webhook it also checks that
// the handler agrees: what is not sent, the handler allows without ensuring
// anything; what is sent, it validates and ensures.
func TestMatchConditions(t *testing.T) {
	hooks := shippedWebhooks(t)
	t.Run("pods", func(t *testing.T) {
		hook := hooks[PodsPath]
		pod := func(annotations string) string {
			return "{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: demo" + annotations + "}, spec: {containers: [{name: app, image: nginx}]}}"
		}
		for _, tc := range []celCase{
			{name: "annotated", op: k8sadmission.Create, object: pod(", annotations: {token-projector.io/audience: vault}"), send: true},
			{name: "not annotated", op: k8sadmission.Create, object: pod(""), send: false},
			{name: "annotations null", op: k8sadmission.Create, object: pod(", annotations: null"), send: false},
			{name: "mirror pod", op: k8sadmission.Create, object: pod(", annotations: {token-projector.io/audience: vault, kubernetes.io/config.mirror: abc}"), send: false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				evalMatchConditions(t, hook, schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, tc)
			})
		}
	})
	t.Run("workloads", func(t *testing.T) {
		hook := hooks[WorkloadsPath]
		deploy := func(replicas, meta, tmplMeta, tmplSpec string) string {
			return "{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: demo" + meta + "}, spec: {replicas: " + replicas +
				", selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}" + tmplMeta + "}, spec: {containers: [{name: app, image: nginx}]" + tmplSpec + "}}}}"
		}
		const (
			ann       = ", annotations: {token-projector.io/audience: vault, token-projector.io/service-account: web-sa}"
			annAud    = ", annotations: {token-projector.io/audience: vault}"
			annExpiry = ", annotations: {token-projector.io/audience: vault, token-projector.io/service-account: web-sa, token-projector.io/expiration: 2h}"
			annOther  = ", annotations: {token-projector.io/audience: vault, token-projector.io/service-account: web-sa, example.com/restartedAt: now}"
			annSA2    = ", annotations: {token-projector.io/audience: vault, token-projector.io/service-account: other-sa}"
			optOut    = ", labels: {app: web, token-projector.io/inject: disabled}" + ann
			deleting  = ", deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [foregroundDeletion]"
		)
		nullLabels := func(replicas string) string {
			return "{apiVersion: apps/v1, kind: Deployment, metadata: {name: web}, spec: {replicas: " + replicas +
				", template: {metadata: {labels: null" + ann + "}, spec: {containers: [{name: app, image: nginx}]}}}}"
		}
		cron := func(jobTemplate string) string {
			return "{apiVersion: batch/v1, kind: CronJob, metadata: {name: nightly, namespace: demo}, spec: {schedule: '@daily'" + jobTemplate + "}}"
		}
		cronTmpl := func(tmplMeta string) string {
			return ", jobTemplate: {spec: {template: {metadata: {name: x" + tmplMeta + "}, spec: {restartPolicy: Never, containers: [{name: app, image: nginx}]}}}}"
		}
		for _, tc := range []celCase{
			{name: "create annotated", op: k8sadmission.Create, object: deploy("1", "", ann, ""), send: true},
			{name: "create not annotated", op: k8sadmission.Create, object: deploy("1", "", "", ""), send: false},
			{name: "create cronjob annotated", op: k8sadmission.Create, object: cron(cronTmpl(ann)), send: true},
			{name: "create cronjob without jobTemplate.spec", op: k8sadmission.Create, object: cron(", jobTemplate: {metadata: {name: x}}"), send: false},
			{name: "create cronjob without jobTemplate", op: k8sadmission.Create, object: cron(""), send: false},
			{name: "create cronjob with jobTemplate.spec null", op: k8sadmission.Create, object: cron(", jobTemplate: {spec: null}"), send: false},
			{name: "create cronjob typed and empty", op: k8sadmission.Create, typed: &batchv1.CronJob{}, send: false},
			{name: "create template metadata null", op: k8sadmission.Create, object: "{kind: Deployment, spec: {template: {metadata: null}}}", send: false},
			{name: "create annotations null", op: k8sadmission.Create, object: "{kind: Deployment, spec: {template: {metadata: {annotations: null}}}}", send: false},
			{name: "create spec null", op: k8sadmission.Create, object: "{kind: Deployment, spec: null}", send: false},
			{name: "create without spec", op: k8sadmission.Create, object: "{kind: Deployment, metadata: {name: web}}", send: false},
			{name: "create being deleted", op: k8sadmission.Create, object: deploy("1", deleting, ann, ""), send: false},

			{name: "scale", op: k8sadmission.Update, object: deploy("3", "", ann, ""), old: deploy("1", "", ann, ""), send: false},
			{name: "finalizer added", op: k8sadmission.Update, object: deploy("1", ", finalizers: [example.com/hold]", ann, ""), old: deploy("1", "", ann, ""), send: false},
			{name: "ownerReference added", op: k8sadmission.Update, object: deploy("1", ", ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: o, uid: u}]", ann, ""), old: deploy("1", "", ann, ""), send: false},
			{name: "image and other annotation changed", op: k8sadmission.Update, object: deploy("1", "", annOther, ", nodeName: node-1"), old: deploy("1", "", ann, ""), send: false},
			{name: "finalizer removed while deleting", op: k8sadmission.Update, object: deploy("1", ", deletionTimestamp: '2026-01-01T00:00:00Z'", ann, ""), old: deploy("1", deleting, ann, ""), send: false},
			{name: "template changed while deleting", op: k8sadmission.Update, object: deploy("1", deleting, annExpiry, ""), old: deploy("1", deleting, ann, ""), send: false},
			{name: "annotation added", op: k8sadmission.Update, object: deploy("1", "", annExpiry, ""), old: deploy("1", "", ann, ""), send: true},
			{name: "annotation removed", op: k8sadmission.Update, object: deploy("1", "", ann, ""), old: deploy("1", "", annExpiry, ""), send: true},
			{name: "annotation changed", op: k8sadmission.Update, object: deploy("1", "", annSA2, ""), old: deploy("1", "", ann, ""), send: true},
			{name: "audience newly added", op: k8sadmission.Update, object: deploy("1", "", ann, ""), old: deploy("1", "", "", ""), send: true},
			{name: "opt-out label removed", op: k8sadmission.Update, object: deploy("1", "", ann, ""), old: deploy("1", "", optOut, ""), send: true},
			{name: "serviceAccountName changed", op: k8sadmission.Update, object: deploy("1", "", annAud, ", serviceAccountName: b"), old: deploy("1", "", annAud, ", serviceAccountName: a"), send: true},
			{name: "deprecated serviceAccount changed", op: k8sadmission.Update, object: deploy("1", "", annAud, ", serviceAccount: b"), old: deploy("1", "", annAud, ""), send: true},
			{name: "old annotations null", op: k8sadmission.Update, object: deploy("1", "", ann, ""), old: deploy("1", "", ", annotations: null", ""), send: true},
			{name: "template labels null on both", op: k8sadmission.Update, object: nullLabels("2"), old: nullLabels("1"), send: false},
			{name: "old without template", op: k8sadmission.Update, object: deploy("1", "", ann, ""), old: "{kind: Deployment, spec: {}}", send: true},
			{name: "cronjob schedule changed", op: k8sadmission.Update, object: cron(cronTmpl(ann)), old: strings.Replace(cron(cronTmpl(ann)), "@daily", "@hourly", 1), send: false},
			{name: "cronjob template changed", op: k8sadmission.Update, object: cron(cronTmpl(annExpiry)), old: cron(cronTmpl(ann)), send: true},
			{name: "cronjob old without jobTemplate.spec", op: k8sadmission.Update, object: cron(cronTmpl(ann)), old: cron(", jobTemplate: {metadata: {name: x}}"), send: true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				gvk := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
				if strings.Contains(tc.object, "CronJob") || tc.typed != nil {
					gvk = schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}
				}
				sent := evalMatchConditions(t, hook, gvk, tc)
				if tc.typed != nil || !strings.Contains(tc.object, "containers") {
					return // not a workload the handler could admit
				}
				handlerAgrees(t, gvk, tc, sent)
			})
		}
	})
}

// evalMatchConditions checks that the webhook's matchConditions compile in
// the environment of the oldest supported kube-apiserver, evaluates them as
// kube-apiserver does, and returns whether the request is sent.
func evalMatchConditions(t *testing.T, hook *admissionregistrationv1.MutatingWebhook, gvk schema.GroupVersionKind, tc celCase) bool {
	t.Helper()
	accessors := make([]celplugin.ExpressionAccessor, len(hook.MatchConditions))
	for i, mc := range hook.MatchConditions {
		accessors[i] = &matchconditions.MatchCondition{Name: mc.Name, Expression: mc.Expression}
	}
	decls := celplugin.OptionalVariableDeclarations{HasAuthorizer: true}
	// The chart's kubeVersion is >=1.30, whose kube-apiserver validates new
	// expressions against the 1.29 CEL libraries.
	oldest := celplugin.NewConditionCompiler(environment.MustBaseEnvSet(version.MajorMinor(1, 29)))
	if errs := oldest.CompileCondition(accessors, decls, environment.NewExpressions).CompilationErrors(); len(errs) > 0 {
		t.Fatalf("matchConditions do not compile for kube-apiserver 1.30: %v", errs)
	}
	compiler := celplugin.NewConditionCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if errs := compiler.CompileCondition(accessors, decls, environment.NewExpressions).CompilationErrors(); len(errs) > 0 {
		t.Fatalf("matchConditions do not compile: %v", errs)
	}

	va := versionedAttributes(t, gvk, tc)
	// Every expression on its own: the matcher stops at the first false and
	// would hide an error in a later one.
	results, _, err := compiler.CompileCondition(accessors, decls, environment.StoredExpressions).ForInput(context.Background(), va,
		celplugin.CreateAdmissionRequest(va.Attributes, metav1.GroupVersionResource(va.GetResource()), metav1.GroupVersionKind(va.VersionedKind)), celplugin.OptionalVariableBindings{}, nil,
		celconfig.RuntimeCELCostBudgetMatchConditions)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Error != nil {
			t.Errorf("matchCondition %s: %v", r.ExpressionAccessor.(*matchconditions.MatchCondition).Name, r.Error)
		}
	}
	// And as the webhook admission plugin combines them.
	m := webhook.NewMutatingWebhookAccessor("uid", "token-projector", hook).GetCompiledMatcher(compiler)
	res := m.Match(context.Background(), va, nil, nil)
	if res.Error != nil {
		t.Fatalf("matcher: %v", res.Error)
	}
	if res.Matches != tc.send {
		t.Errorf("sent = %v (failed condition %q), want %v", res.Matches, res.FailedConditionName, tc.send)
	}
	return res.Matches
}

func versionedAttributes(t *testing.T, gvk schema.GroupVersionKind, tc celCase) *k8sadmission.VersionedAttributes {
	t.Helper()
	obj := tc.typed
	if obj == nil {
		obj = unstructuredYAML(t, tc.object)
	}
	var old runtime.Object // a nil interface, as on CREATE
	if tc.old != "" {
		old = unstructuredYAML(t, tc.old)
	}
	gvr := schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"}
	attrs := k8sadmission.NewAttributesRecord(obj, old, gvk, "demo", "web", gvr, "", tc.op, nil, false, &user.DefaultInfo{Name: "system:serviceaccount:kube-system:deployment-controller"})
	va := &k8sadmission.VersionedAttributes{Attributes: attrs, VersionedKind: gvk}
	va.VersionedObject.Set(obj)
	if old != nil {
		va.VersionedOldObject.Set(old)
	}
	return va
}

func unstructuredYAML(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return u
}

// handlerAgrees sends the same request to the workloads handler: a write the
// matchConditions keep away must be allowed without any ensure if it
// arrives anyway; one they send must be validated and its account ensured.
func handlerAgrees(t *testing.T, gvk schema.GroupVersionKind, tc celCase, sent bool) {
	t.Helper()
	toJSON := func(s string) []byte {
		if s == "" {
			return nil
		}
		b, err := json.Marshal(unstructuredYAML(t, s).Object)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-w", Namespace: "demo", Operation: admissionv1.Operation(tc.op),
		Kind:      metav1.GroupVersionKind(gvk),
		Object:    runtime.RawExtension{Raw: toJSON(tc.object)},
		OldObject: runtime.RawExtension{Raw: toJSON(tc.old)},
	}}
	ens := &stubEnsurer{}
	resp := (&WorkloadHandler{PodHandler: newHandler(ens)}).Handle(context.Background(), req)
	if !resp.Allowed {
		t.Fatalf("handler denied: %v", resp.Result)
	}
	ensured := len(ens.calls) > 0
	// Every sent case here names an account and is not opted out, except the
	// opted-out template, which the handler skips after reading it.
	if sent && strings.Contains(tc.object, "token-projector.io/inject: disabled") {
		ensured = true
	}
	if ensured != sent {
		t.Errorf("handler ensured %v (%s), matchConditions send %v", ens.calls, resp.Result.Message, sent)
	}
}
