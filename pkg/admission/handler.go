// Package admission is the thin glue between controller-runtime's webhook
// server and the pure core: it decodes the request, decides whether to skip,
// deny or mutate, asks pkg/mutate what to inject and pkg/rbac to ensure the
// identity, and answers with add-only JSON Patch operations.
package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// PodsPath is where the pod webhook is served.
const PodsPath = "/mutate-pods"

// Outcomes and reasons: the fixed values of the admissions metric and logs.
const (
	outcomeMutated   = "mutated"
	outcomeUnchanged = "unchanged"
	outcomeSkipped   = "skipped"
	outcomeDenied    = "denied"
	outcomeErrored   = "errored"

	reasonNotPodCreate    = "not-pod-create"
	reasonNoAudience      = "no-audience"
	reasonPodOptedOut     = "pod-opted-out"
	reasonNamespaceNotIn  = "namespace-not-opted-in"
	reasonInvalid         = "invalid"
	reasonNamespaceForged = "namespace-mismatch"
	reasonRBACConflict    = "rbac-conflict"
	reasonBadRequest      = "bad-request"
	reasonNamespaceLookup = "namespace-lookup"
	reasonEnsure          = "ensure"
	reasonInjected        = "injected"
)

// Ensurer ensures a ServiceAccount and its RBAC; *rbac.Ensurer is the real one.
type Ensurer interface {
	Ensure(ctx context.Context, namespace, serviceAccount string, dryRun bool) ([]rbac.Created, error)
}

// PodHandler admits pods.
type PodHandler struct {
	// Config bounds what pods may ask for.
	Config mutate.Config
	// Namespaces reads Namespaces (metadata is enough) from the webhook's own
	// cache: opt-in is decided from it, never from the request.
	Namespaces client.Reader
	// Ensurer ensures the ServiceAccount and its RBAC.
	Ensurer Ensurer
	// EnsureTimeout bounds the ensure step so that the webhook answers, with a
	// clear error, before kube-apiserver gives up on it.
	EnsureTimeout time.Duration
}

// verdict is one admission decision, with what the log line and metric say.
type verdict struct {
	resp    admission.Response
	outcome string
	reason  string
	err     error
}

// Handle implements admission.Handler.
func (h *PodHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	var pod corev1.Pod
	v := h.admit(ctx, req, &pod)
	admissions.WithLabelValues(v.outcome, v.reason).Inc()

	log := logf.FromContext(ctx).WithValues(
		"namespace", req.Namespace, "pod", podName(&pod), "outcome", v.outcome, "reason", v.reason,
		"serviceAccount", pod.Spec.ServiceAccountName, "audiences", pod.Annotations[mutate.AnnotationAudience],
		"dryRun", req.DryRun != nil && *req.DryRun, "duration", time.Since(start))
	switch v.outcome {
	case outcomeErrored:
		log.Error(v.err, "Admission failed")
	case outcomeSkipped:
		log.V(1).Info("Admission decided")
	default:
		log.Info("Admission decided")
	}
	return v.resp
}

func (h *PodHandler) admit(ctx context.Context, req admission.Request, pod *corev1.Pod) verdict {
	if req.Operation != admissionv1.Create || req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return skip(reasonNotPodCreate, "only pod creation is handled")
	}
	// encoding/json rather than the universal deserializer: the request says
	// what the object is, and scanning it again costs a tenth of our CPU.
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		return errored(http.StatusBadRequest, reasonBadRequest, fmt.Errorf("decoding the pod: %w", err))
	}
	switch {
	case !mutate.Triggered(pod.Annotations):
		return skip(reasonNoAudience, "no "+mutate.AnnotationAudience+" annotation")
	case pod.Labels[mutate.LabelInject] == mutate.InjectDisabled:
		return skip(reasonPodOptedOut, "pod labelled "+mutate.LabelInject+"="+mutate.InjectDisabled)
	case req.Namespace == "":
		return errored(http.StatusBadRequest, reasonBadRequest, fmt.Errorf("the request names no namespace"))
	case pod.Namespace != "" && pod.Namespace != req.Namespace:
		return deny(reasonNamespaceForged, fmt.Sprintf("metadata.namespace %q differs from the namespace of the request %q", pod.Namespace, req.Namespace))
	}

	optedIn, err := h.optedIn(ctx, req.Namespace)
	if err != nil {
		return errored(http.StatusInternalServerError, reasonNamespaceLookup, err)
	}
	if !optedIn {
		return skip(reasonNamespaceNotIn, "namespace "+req.Namespace+" is not labelled "+mutate.LabelInject+"="+mutate.InjectEnabled)
	}

	res, err := mutate.Mutate(pod, h.Config)
	if err != nil {
		return deny(reasonInvalid, err.Error())
	}
	if res.Spec.ServiceAccount != "" {
		if v, failed := h.ensure(ctx, req, res.Spec.ServiceAccount); failed {
			return v
		}
	}
	if res.Changes.Empty() {
		return verdict{resp: admission.Allowed("already injected").WithWarnings(res.Warnings...), outcome: outcomeUnchanged, reason: reasonInjected}
	}
	ops := patchOps(pod, &res.Changes)
	res.Changes.Apply(pod) // for the log line: the pod as it will run
	return verdict{resp: admission.Patched("", ops...).WithWarnings(res.Warnings...), outcome: outcomeMutated, reason: reasonInjected}
}

func (h *PodHandler) ensure(ctx context.Context, req admission.Request, serviceAccount string) (verdict, bool) {
	if h.EnsureTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.EnsureTimeout)
		defer cancel()
	}
	_, err := h.Ensurer.Ensure(ctx, req.Namespace, serviceAccount, req.DryRun != nil && *req.DryRun)
	switch {
	case err == nil:
		return verdict{}, false
	case rbac.IsConflict(err):
		return deny(reasonRBACConflict, err.Error()), true
	default:
		return errored(http.StatusInternalServerError, reasonEnsure,
			fmt.Errorf("ensuring ServiceAccount %s/%s and its token RBAC: %w", req.Namespace, serviceAccount, err)), true
	}
}

func (h *PodHandler) optedIn(ctx context.Context, namespace string) (bool, error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := h.Namespaces.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading namespace %s from cache: %w", namespace, err)
	}
	return ns.Labels[mutate.LabelInject] == mutate.InjectEnabled, nil
}

func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return pod.GenerateName
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
