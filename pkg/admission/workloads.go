package admission

import (
	"context"
	"fmt"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// WorkloadsPath is where the workload webhook is served.
const WorkloadsPath = "/mutate-workloads"

// workloadKinds are the kinds whose pod templates are checked, by API group.
var workloadKinds = map[string]map[string]bool{
	"apps":  {"Deployment": true, "StatefulSet": true, "DaemonSet": true, "ReplicaSet": true},
	"batch": {"Job": true, "CronJob": true},
}

// WorkloadHandler admits Deployments, StatefulSets, DaemonSets, ReplicaSets,
// Jobs and CronJobs whose pod template asks for a token. It validates the
// template with the pod rules, so a bad annotation fails at apply time rather
// than as FailedCreate events later, and ensures the ServiceAccount and its
// RBAC before the controller creates pods: kube-apiserver rejects a pod
// naming a ServiceAccount that does not exist yet. It never patches the
// workload, so GitOps tools see no drift; pods are mutated when created.
type WorkloadHandler struct {
	*PodHandler
}

// workload is the part of a workload the handler reads.
type workload struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Template    *corev1.PodTemplateSpec `json:"template"`
		JobTemplate *struct {
			Spec struct {
				Template *corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

// DeepCopyObject makes workload a runtime.Object, so that an Event can be
// about it; its apiVersion and kind come from the request body.
func (w *workload) DeepCopyObject() runtime.Object {
	c := *w
	return &c
}

func (w *workload) template() *corev1.PodTemplateSpec {
	if w.Spec.JobTemplate != nil {
		return w.Spec.JobTemplate.Spec.Template
	}
	return w.Spec.Template
}

// Handle implements admission.Handler.
func (h *WorkloadHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	var w workload
	tmpl := &corev1.PodTemplateSpec{}
	v := h.admitWorkload(ctx, start, req, &w, &tmpl)
	h.record(ctx, req, v, subject{kind: req.Kind.Kind, resource: resourceWorkload, meta: &tmpl.ObjectMeta, spec: &tmpl.Spec, object: &w, name: w.Name}, start)
	return v.resp
}

func (h *WorkloadHandler) admitWorkload(ctx context.Context, start time.Time, req admission.Request, w *workload, tmpl **corev1.PodTemplateSpec) verdict {
	if (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) || !workloadKinds[req.Kind.Group][req.Kind.Kind] || req.SubResource != "" {
		return skip(reasonNotHandled, "only workload creation and update are handled")
	}
	// Case sensitive, as kube-apiserver decodes (see decodePod).
	if err := unambiguous(req.Object.Raw); err != nil {
		return errored(http.StatusBadRequest, reasonBadRequest, fmt.Errorf("decoding the %s: %w", req.Kind.Kind, err))
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, w); err != nil {
		return errored(http.StatusBadRequest, reasonBadRequest, fmt.Errorf("decoding the %s: %w", req.Kind.Kind, err))
	}
	if w.DeletionTimestamp != nil {
		return skip(reasonDeleting, "the "+req.Kind.Kind+" is being deleted")
	}
	if w.template() == nil {
		return errored(http.StatusBadRequest, reasonBadRequest, fmt.Errorf("the %s has no pod template", req.Kind.Kind))
	}
	*tmpl = w.template()
	if unchangedTemplate(req, *tmpl) {
		return skip(reasonTemplateUnchanged, "the pod template asks for nothing new (same "+mutate.Prefix+"* annotations and labels, same service account)")
	}
	policy, v, done := h.screen(ctx, start, req, &(*tmpl).ObjectMeta)
	if done {
		return v
	}
	if v, forged := namespaceMismatch(req, &w.ObjectMeta); forged {
		return v
	}
	// The pod the controller will create from this template, as the pod
	// webhook will see it: same validation, same conflicts, same messages.
	pod := &corev1.Pod{ObjectMeta: (*tmpl).ObjectMeta, Spec: (*tmpl).Spec}
	res, err := mutate.Mutate(pod, policy.cfg)
	if err != nil {
		return deny(reasonInvalid, err.Error())
	}
	ensured, v, failed := h.ensure(ctx, start, req, res.Spec.ServiceAccount)
	if failed {
		return v
	}
	warnings := appendIf(policy.with(res.Warnings), noRBACWarning(req.Namespace, res.Spec.ServiceAccount, ensured))
	return verdict{resp: admission.Allowed("").WithWarnings(warnings...), outcome: outcomeUnchanged, reason: reasonEnsured}
}

// unchangedTemplate reports whether req is an UPDATE whose old object's pod
// template asks for the same as tmpl (mutate.SameRequest). The matchConditions
// keep such UPDATEs away; this answers the same if one arrives anyway. An
// UPDATE without a readable old template is treated as a change: it is
// validated in full.
func unchangedTemplate(req admission.Request, tmpl *corev1.PodTemplateSpec) bool {
	if req.Operation != admissionv1.Update || len(req.OldObject.Raw) == 0 {
		return false
	}
	var old workload
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.OldObject.Raw, &old); err != nil || old.template() == nil {
		return false
	}
	return mutate.SameRequest(old.template(), tmpl)
}
