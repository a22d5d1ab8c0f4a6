package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/version"
	k8sadmission "k8s.io/apiserver/pkg/admission"
	celplugin "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/pkg/mutate"
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
	typedOld    runtime.Object // instead of old
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
			annEnv    = ", annotations: {token-projector.io/audience: vault, token-projector.io/service-account: web-sa, token-projector.io/token-file-env: vault=VAULT_TOKEN_FILE}"
			annStatus = ", annotations: {token-projector.io/audience: vault, token-projector.io/service-account: web-sa, token-projector.io/status: '{}'}"
			injected  = ", labels: {app: web, token-projector.io/injected: 'true'}" + ann
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
			{name: "token-file-env annotation added", op: k8sadmission.Update, object: deploy("1", "", annEnv, ""), old: deploy("1", "", ann, ""), send: true},
			{name: "opt-out label added", op: k8sadmission.Update, object: deploy("1", "", optOut, ""), old: deploy("1", "", ann, ""), send: true},
			// The webhook's own output on pods, copied into a template, asks
			// for nothing: the handler decides the same with or without it.
			{name: "status annotation added", op: k8sadmission.Update, object: deploy("1", "", annStatus, ""), old: deploy("1", "", ann, ""), send: false},
			{name: "injected label added", op: k8sadmission.Update, object: deploy("1", "", injected, ""), old: deploy("1", "", ann, ""), send: false},
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
				sent, _ := evalMatchConditions(t, hook, gvk, tc)
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
// kube-apiserver does, and returns whether the request is sent and the
// runtime cost of the expressions, which kube-apiserver charges to the
// webhook's budget.
func evalMatchConditions(t *testing.T, hook *admissionregistrationv1.MutatingWebhook, gvk schema.GroupVersionKind, tc celCase) (bool, int64) {
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
	results, remaining, err := compiler.CompileCondition(accessors, decls, environment.StoredExpressions).ForInput(context.Background(), va,
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
	return res.Matches, celconfig.RuntimeCELCostBudgetMatchConditions - remaining
}

func versionedAttributes(t *testing.T, gvk schema.GroupVersionKind, tc celCase) *k8sadmission.VersionedAttributes {
	t.Helper()
	obj := tc.typed
	if obj == nil {
		obj = unstructuredYAML(t, tc.object)
	}
	var old runtime.Object // a nil interface, as on CREATE
	switch {
	case tc.typedOld != nil:
		old = tc.typedOld
	case tc.old != "":
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

// TestTemplateMatchConditionReadsTheHandlersKeys: the UPDATE condition of the
// workloads webhook compares exactly the keys mutate.SameRequest compares
// (mutate.TemplateAnnotations, mutate.TemplateLabels), so that what the
// matchConditions keep away the handler allows, and the reverse.
func TestTemplateMatchConditionReadsTheHandlersKeys(t *testing.T) {
	expr := templateCondition(t)
	quoted := regexp.MustCompile(`'(` + regexp.QuoteMeta(mutate.Prefix) + `[^']*)'`)
	var got []string
	for _, m := range quoted.FindAllStringSubmatch(expr, -1) {
		got = append(got, m[1])
	}
	want := append(slices.Clone(mutate.TemplateAnnotations), mutate.TemplateLabels...)
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the expression reads %v, the handler %v", got, want)
	}
	var labels []string
	for _, m := range regexp.MustCompile(`labels\[\?'([^']*)'\]`).FindAllStringSubmatch(expr, -1) {
		labels = append(labels, m[1])
	}
	slices.Sort(labels)
	labels = slices.Compact(labels)
	if !slices.Equal(labels, slices.Sorted(slices.Values(mutate.TemplateLabels))) {
		t.Errorf("the expression looks up the labels %v, the handler %v", labels, mutate.TemplateLabels)
	}
}

func templateCondition(t *testing.T) string {
	t.Helper()
	for _, mc := range shippedWebhooks(t)[WorkloadsPath].MatchConditions {
		if mc.Name == "template-asks-for-something-new" {
			return mc.Expression
		}
	}
	t.Fatal("no matchCondition template-asks-for-something-new")
	return ""
}

// TestMatchConditionsCostIsBounded: the cost CEL estimates for each shipped
// expression, over every object kube-apiserver could store, is within the
// limits kube-apiserver enforces at run time: PerCallLimit per expression and
// RuntimeCELCostBudgetMatchConditions for all of a webhook's. An expression
// whose cost grows with the object (one that iterates its annotations, say)
// has no such bound. The environment is the one kube-apiserver compiles
// matchConditions in (its admission plugin's variables, with strict cost
// tracking), and the estimator its own (library.CostEstimator).
func TestMatchConditionsCostIsBounded(t *testing.T) {
	env := matchConditionEnv(t)
	for path, hook := range shippedWebhooks(t) {
		var total uint64
		for _, mc := range hook.MatchConditions {
			ast, issues := env.Compile(mc.Expression)
			if issues.Err() != nil {
				t.Fatalf("%s %s: %v", path, mc.Name, issues.Err())
			}
			est, err := env.EstimateCost(ast, &library.CostEstimator{SizeEstimator: storedSizes{}})
			if err != nil {
				t.Fatalf("%s %s: %v", path, mc.Name, err)
			}
			t.Logf("%s %s: estimated cost %d to %d", path, mc.Name, est.Min, est.Max)
			if est.Max > celconfig.PerCallLimit {
				t.Errorf("%s %s: estimated cost up to %d, above kube-apiserver's limit of %d per expression", path, mc.Name, est.Max, celconfig.PerCallLimit)
			}
			total += est.Max
		}
		if total > celconfig.RuntimeCELCostBudgetMatchConditions {
			t.Errorf("%s: estimated cost up to %d, above kube-apiserver's budget of %d for a webhook's matchConditions", path, total, celconfig.RuntimeCELCostBudgetMatchConditions)
		}
	}
}

// storedSizes bounds every string, list and map the expressions read by
// the largest one a stored object can hold in its annotations (256 KiB in
// total, apimachinery's TotalAnnotationSizeLimitB); labels and account names
// are far shorter. The new object of an UPDATE is not yet validated, but an
// expression only compares its strings to the old object's, which
// kube-apiserver validated before storing it, and CEL charges a comparison by
// the shorter side; the other expressions compare it to null.
type storedSizes struct{}

func (storedSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: uint64(apivalidation.TotalAnnotationSizeLimitB)}
}

func (storedSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// matchConditionEnv is the CEL environment kube-apiserver compiles a
// webhook's matchConditions in (k8s.io/apiserver's admission plugin
// compiler, HasAuthorizer as the validation of webhook configurations
// declares it), which the compiler does not expose.
func matchConditionEnv(t *testing.T) *cel.Env {
	t.Helper()
	request, namespace := celplugin.BuildRequestType(), celplugin.BuildNamespaceType()
	set, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions: []cel.EnvOption{
			cel.Variable(celplugin.ObjectVarName, cel.DynType),
			cel.Variable(celplugin.OldObjectVarName, cel.DynType),
			cel.Variable(celplugin.NamespaceVarName, namespace.CelType()),
			cel.Variable(celplugin.RequestVarName, request.CelType()),
			cel.Variable(celplugin.AuthorizerVarName, library.AuthorizerType),
			cel.Variable(celplugin.RequestResourceAuthorizerVarName, library.ResourceCheckType),
		},
		DeclTypes: []*apiservercel.DeclType{namespace, request},
	}, environment.StrictCostOpt)
	if err != nil {
		t.Fatal(err)
	}
	env, err := set.Env(environment.NewExpressions)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestMatchConditionsOnHugeTemplates evaluates the workloads webhook's
// matchConditions as kube-apiserver does (its runtime cost limits included)
// on a Deployment that is valid but as large as its template's metadata
// allows: annotations filling nearly all of their 256 KiB over thousands of
// keys, and thousands of labels, in the old object and the new. A scale must
// pass without a cost error (under failurePolicy Fail, one would reject the
// controller's write) and without calling the webhook; a changed token
// annotation must still be sent; the handler must agree.
func TestMatchConditionsOnHugeTemplates(t *testing.T) {
	hook := shippedWebhooks(t)[WorkloadsPath]
	huge := func(replicas int32, extra map[string]string) *appsv1.Deployment {
		annotations := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "web-sa"}
		maps.Copy(annotations, extra)
		// 43 000 keys of 6 bytes: 252 KiB of the 256 KiB allowed; as many
		// labels. About 1 MB of JSON: etcd stores up to 1.5 MiB.
		labels := map[string]string{"app": "web"}
		for i := range 43000 {
			annotations[fmt.Sprintf("a%05d", i)] = ""
			labels[fmt.Sprintf("l%05d", i)] = ""
		}
		d := &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo"},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Annotations: annotations, Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
				},
			},
		}
		// Valid as kube-apiserver validates metadata.
		meta := field.NewPath("spec", "template", "metadata")
		if errs := append(apivalidation.ValidateAnnotations(annotations, meta.Child("annotations")),
			metav1validation.ValidateLabels(labels, meta.Child("labels"))...); len(errs) > 0 {
			t.Fatal(errs.ToAggregate())
		}
		return d
	}
	stored := huge(1, nil)
	gvk := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	for _, tc := range []celCase{
		{name: "scale", op: k8sadmission.Update, typed: huge(3, nil), typedOld: stored, send: false},
		{name: "other annotation changed", op: k8sadmission.Update, typed: huge(1, map[string]string{"a00042": "y"}), typedOld: stored, send: false},
		{name: "token annotation changed", op: k8sadmission.Update, typed: huge(1, map[string]string{mutate.AnnotationExpiration: "2h"}), typedOld: stored, send: true},
		{name: "create", op: k8sadmission.Create, typed: stored, send: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent, cost := evalMatchConditions(t, hook, gvk, tc)
			t.Logf("runtime cost %d of %d", cost, celconfig.RuntimeCELCostBudgetMatchConditions)
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "uid-huge", Namespace: "demo", Operation: admissionv1.Operation(tc.op), Kind: metav1.GroupVersionKind(gvk),
				Object: runtime.RawExtension{Raw: mustJSON(t, tc.typed)},
			}}
			if tc.typedOld != nil {
				req.OldObject = runtime.RawExtension{Raw: mustJSON(t, tc.typedOld)}
			}
			ens := &stubEnsurer{}
			if resp := (&WorkloadHandler{PodHandler: newHandler(ens)}).Handle(context.Background(), req); !resp.Allowed || (len(ens.calls) > 0) != sent {
				t.Errorf("handler allowed %v, ensured %v; matchConditions send %v", resp.Allowed, ens.calls, sent)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
