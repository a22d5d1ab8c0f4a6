package admission

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// Outcomes and reasons: the fixed values of the admissions metric and logs.
const (
	outcomeMutated   = "mutated"
	outcomeUnchanged = "unchanged"
	outcomeSkipped   = "skipped"
	outcomeDenied    = "denied"
	outcomeErrored   = "errored"

	reasonNotHandled         = "not-handled"
	reasonDeleting           = "deleting"
	reasonTemplateUnchanged  = "template-unchanged"
	reasonMirrorPod          = "mirror-pod"
	reasonNoAudience         = "no-audience"
	reasonPodOptedOut        = "pod-opted-out"
	reasonNamespaceNotIn     = "namespace-not-opted-in"
	reasonNamespaceNotServed = "namespace-not-served"
	reasonInvalid            = "invalid"
	reasonNamespaceForged    = "namespace-mismatch"
	reasonRBACConflict       = "rbac-conflict"
	reasonBoundAccount       = "bound-account"
	reasonBadRequest         = "bad-request"
	reasonNamespaceLookup    = "namespace-lookup"
	reasonNamespacePolicy    = "namespace-policy"
	reasonRateLimited        = "rate-limited"
	reasonEnsure             = "ensure"
	reasonInjected           = "injected"
	reasonEnsured            = "ensured"

	resourcePod      = "pod"
	resourceWorkload = "workload"
)

// verdict is one admission decision, with what the log line and metric say.
type verdict struct {
	resp    admission.Response
	outcome string
	reason  string
	err     error
}

func skip(reason, msg string) verdict {
	return verdict{resp: admission.Allowed(msg), outcome: outcomeSkipped, reason: reason}
}

func deny(reason, msg string) verdict {
	return verdict{resp: admission.Denied(msg), outcome: outcomeDenied, reason: reason}
}

func errored(code int32, reason string, err error) verdict {
	return verdict{resp: admission.Errored(code, err), outcome: outcomeErrored, reason: reason, err: err}
}

// subject is what a decision was about: a pod, or a workload and its pod
// template. Its fields are filled as far as decoding got.
type subject struct {
	kind, resource string
	meta           *metav1.ObjectMeta // the pod's or the template's
	spec           *corev1.PodSpec    // the pod's or the template's
	object         runtime.Object     // the admitted object, for Events
	name           string             // the workload's name; the pod's comes from meta
}

func (s subject) displayName() string {
	switch {
	case s.name != "":
		return s.name
	case s.meta.Name != "":
		return s.meta.Name
	}
	return s.meta.GenerateName
}

// record counts, logs and, for denials of real requests, reports one decision. Tokens never
// appear in what admission sees, so nothing here can log one.
func (h *PodHandler) record(ctx context.Context, req admission.Request, v verdict, s subject, start time.Time) {
	admissions.WithLabelValues(s.resource, v.outcome, v.reason).Inc()
	serviceAccount := s.spec.ServiceAccountName
	if sa := s.meta.Annotations[mutate.AnnotationServiceAccount]; sa != "" {
		serviceAccount = sa
	}
	// The values go to the one call that logs, not through WithValues: zap
	// encodes WithValues' fields at once, even for a line its level then
	// drops (skips log at V(1)); zap.Logger.With was 4.7 % of the webhook's
	// CPU under load (make bench profile), this call part of it.
	dryRun := req.DryRun != nil && *req.DryRun
	log := logf.FromContext(ctx)
	kvs := []any{
		"kind", s.kind, "namespace", req.Namespace, "name", s.displayName(), "operation", req.Operation,
		"outcome", v.outcome, "reason", v.reason, "serviceAccount", serviceAccount,
		"audiences", s.meta.Annotations[mutate.AnnotationAudience],
		"dryRun", dryRun, "duration", time.Since(start),
	}
	switch v.outcome {
	case outcomeErrored:
		log.Error(v.err, "Admission failed", kvs...)
	case outcomeSkipped:
		log.V(1).Info("Admission decided", kvs...)
	default:
		log.Info("Admission decided", kvs...)
	}
	// An Event is a write, and a dry-run request makes none at all
	// (sideEffects: NoneOnDryRun): its denial is in the answer and the log.
	if v.outcome == outcomeDenied && h.Recorder != nil && req.Namespace != "" && !dryRun {
		h.Recorder.Eventf(eventSubject(s, req.Namespace), nil, corev1.EventTypeWarning, "TokenInjectionDenied", "Admit",
			"%s", truncate(v.resp.Result.Message))
	}
}

// eventSubject is the object a denial Event is about. A denied pod was never
// stored, so the Event names it as it was submitted (generateName if that is
// all it had), in the request's namespace.
func eventSubject(s subject, namespace string) runtime.Object {
	if s.resource == resourceWorkload {
		if o, ok := s.object.(metav1.Object); ok && o.GetName() != "" {
			return s.object
		}
	}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: s.displayName()},
	}
}

func (h *PodHandler) recordCreated(created []rbac.Created) {
	if h.Recorder == nil {
		return
	}
	for _, c := range created {
		h.Recorder.Eventf(c.Object, nil, corev1.EventTypeNormal, "Created", "Ensure",
			"token-projector created %s %s/%s", c.Kind, c.Object.GetNamespace(), c.Object.GetName())
	}
}

// truncate keeps an Event note within the API's 1 KiB limit.
func truncate(s string) string {
	const limit = 1000
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
