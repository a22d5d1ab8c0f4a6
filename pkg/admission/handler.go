// Package admission is the thin glue between controller-runtime's webhook
// server and the pure core: it decodes the request, decides whether to skip,
// deny or mutate, asks pkg/mutate what to inject and pkg/rbac to ensure the
// identity, and answers with add-only JSON Patch operations.
package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// PodsPath is where the pod webhook is served.
const PodsPath = "/mutate-pods"

// Ensurer ensures a ServiceAccount and its RBAC; *rbac.Ensurer is the real one.
type Ensurer interface {
	Ensure(ctx context.Context, namespace, serviceAccount string, dryRun bool) (rbac.Result, error)
}

// PodHandler admits pods.
type PodHandler struct {
	// Config bounds what pods may ask for.
	Config mutate.Config
	// Namespaces reads Namespaces (metadata is enough) from the webhook's own
	// cache: opt-in is decided from it, never from the request.
	Namespaces client.Reader
	// LiveNamespaces, if set, reads one Namespace from the API server (an
	// uncached reader) to confirm a "not opted in" from the cache.
	LiveNamespaces client.Reader
	// NamespaceReadLimiter, if set, is waited on before each live namespace
	// read, the API traffic that forged reviews for namespaces not opted in
	// can trigger. It must not be the Ensurer's: a flood of such reviews
	// would then spend the budget of real admissions' creates. A wait that
	// cannot end within the read's deadline fails the admission (500).
	NamespaceReadLimiter Limiter
	// Ensurer ensures the ServiceAccount and its RBAC.
	Ensurer Ensurer
	// EnsureTimeout is the deadline of each admission, counted from the
	// start of Handle, so that the webhook answers, with a clear error,
	// before kube-apiserver gives up on it: the live namespace read takes
	// at most its first third (limiter waits included), the ensure what is
	// left. Zero: no deadline of the webhook's own.
	EnsureTimeout time.Duration
	// Recorder, if set, reports denials and created objects as Events.
	Recorder events.EventRecorder
	// ServedNamespaces, if set, are the only namespaces the webhook may write
	// in (the namespaced RBAC scope, --namespaces). A pod in another opted-in
	// namespace is denied with a message saying so, rather than half-injected
	// or failing on a cache that does not cover it.
	ServedNamespaces []string

	// reads shares the live namespace reads of concurrent admissions.
	reads namespaceReads
}

// Handle implements admission.Handler.
func (h *PodHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	pod := &corev1.Pod{}
	v := h.admitPod(ctx, start, req, pod)
	h.record(ctx, req, v, subject{kind: "Pod", resource: resourcePod, meta: &pod.ObjectMeta, spec: &pod.Spec, object: pod}, start)
	return v.resp
}

func (h *PodHandler) admitPod(ctx context.Context, start time.Time, req admission.Request, pod *corev1.Pod) verdict {
	if req.Operation != admissionv1.Create || req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return skip(reasonNotHandled, "only pod creation is handled")
	}
	if err := requestPod(ctx, req.Object.Raw, pod); err != nil {
		return errored(http.StatusBadRequest, reasonBadRequest, fmt.Errorf("decoding the pod: %w", err))
	}
	// A mirror pod is the API's copy of a kubelet's static pod: the
	// ServiceAccount plugin forbids it any ServiceAccount token volume, so
	// injecting one would keep the static pod from being mirrored at all.
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return skip(reasonMirrorPod, "mirror pods (annotation "+corev1.MirrorPodAnnotationKey+") may not use ServiceAccount tokens")
	}
	policy, v, done := h.screen(ctx, start, req, &pod.ObjectMeta)
	if done {
		return v
	}
	if v, forged := namespaceMismatch(req, &pod.ObjectMeta); forged {
		return v
	}
	res, err := mutate.Mutate(pod, policy.cfg)
	if err != nil {
		return deny(reasonInvalid, err.Error())
	}
	ensured, v, failed := h.ensure(ctx, start, req, res.Spec.ServiceAccount)
	if failed {
		return v
	}
	res.Restate(pod, ensured)
	res.Warnings = appendIf(policy.with(res.Warnings), noRBACWarning(req.Namespace, res.Spec.ServiceAccount, ensured))
	if res.Changes.Empty() {
		return verdict{resp: admission.Allowed("already injected").WithWarnings(res.Warnings...), outcome: outcomeUnchanged, reason: reasonInjected}
	}
	// The log line needs no Apply: it names the account from the annotation
	// first, as the patch sets it (Apply was an eighth of the bytes
	// allocated per admission).
	ops := patchOps(pod, &res.Changes)
	return verdict{resp: admission.Patched("", ops...).WithWarnings(res.Warnings...), outcome: outcomeMutated, reason: reasonInjected}
}

// policy is what a namespace lets its pods ask for: the flags narrowed by
// its annotations, and the warnings that go with it.
type policy struct {
	cfg      mutate.Config
	warnings []string
}

// with puts the policy's warnings before a pod's.
func (p policy) with(warnings []string) []string {
	if len(p.warnings) == 0 {
		return warnings
	}
	return append(slices.Clip(p.warnings), warnings...)
}

// screen applies the skip and deny rules that come before the annotations
// are read: trigger, opt-out, namespace, the namespace's policy. meta is
// the pod's or the pod template's metadata; the namespace is always the
// request's.
func (h *PodHandler) screen(ctx context.Context, start time.Time, req admission.Request, meta *metav1.ObjectMeta) (policy, verdict, bool) {
	switch {
	case !mutate.Triggered(meta.Annotations):
		return policy{}, skip(reasonNoAudience, "no "+mutate.AnnotationAudience+" annotation"), true
	case meta.Labels[mutate.LabelInject] == mutate.InjectDisabled:
		return policy{}, skip(reasonPodOptedOut, "pod labelled "+mutate.LabelInject+"="+mutate.InjectDisabled), true
	case req.Namespace == "":
		return policy{}, errored(http.StatusBadRequest, reasonBadRequest, fmt.Errorf("the request names no namespace")), true
	}
	annotations, optedIn, err := h.optedIn(ctx, req.Namespace, start)
	switch {
	case err != nil && rateLimited(err):
		return policy{}, errored(http.StatusInternalServerError, reasonRateLimited, err), true
	case err != nil:
		return policy{}, errored(http.StatusInternalServerError, reasonNamespaceLookup, err), true
	case !optedIn:
		return policy{}, skip(reasonNamespaceNotIn, "namespace "+req.Namespace+" is not labelled "+mutate.LabelInject+"="+mutate.InjectEnabled), true
	}
	if len(h.ServedNamespaces) > 0 && !slices.Contains(h.ServedNamespaces, req.Namespace) {
		return policy{}, deny(reasonNamespaceNotServed, fmt.Sprintf("namespace %s is labelled %s=%s but is not served by this webhook, which may only write in %s (--namespaces); "+
			"ask the cluster admin to add it, or remove the label", req.Namespace, mutate.LabelInject, mutate.InjectEnabled, strings.Join(h.ServedNamespaces, ", "))), true
	}
	// A malformed annotation denies: falling back on the wider flags would
	// hand out what the namespace's admin meant to forbid.
	cfg, warnings, err := h.Config.ForNamespace(req.Namespace, annotations)
	if err != nil {
		return policy{}, deny(reasonNamespacePolicy, err.Error()), true
	}
	return policy{cfg: cfg, warnings: warnings}, verdict{}, false
}

// namespaceMismatch denies an object whose metadata.namespace differs from
// the request's: everything we write goes to request.namespace, and a request
// that disagrees with itself is forged or broken.
func namespaceMismatch(req admission.Request, meta *metav1.ObjectMeta) (verdict, bool) {
	if meta.Namespace != "" && meta.Namespace != req.Namespace {
		return deny(reasonNamespaceForged, fmt.Sprintf("metadata.namespace %q differs from the namespace of the request %q", meta.Namespace, req.Namespace)), true
	}
	return verdict{}, false
}

// ensure makes the pod's identity exist and says what was ensured;
// serviceAccount "" (the pod runs as default) ensures nothing. Each admission
// answers by its own deadline, even while it waits on an ensure another
// admission started: EnsureTimeout from start, the one deadline the live
// namespace read (confirmOptIn) had the first third of, so that the slowest
// answer takes EnsureTimeout, whichever step is slow.
func (h *PodHandler) ensure(ctx context.Context, start time.Time, req admission.Request, serviceAccount string) (mutate.Identity, verdict, bool) {
	if serviceAccount == "" {
		return mutate.Identity{}, verdict{}, false
	}
	if h.EnsureTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(h.EnsureTimeout))
		defer cancel()
	}
	dryRun := req.DryRun != nil && *req.DryRun
	res, err := h.Ensurer.Ensure(ctx, req.Namespace, serviceAccount, dryRun)
	if !dryRun { // a dry run writes nothing, Events included
		h.recordCreated(res.Created)
	}
	switch {
	case err == nil:
		return mutate.Identity{RBAC: res.RBAC, ManagedAccount: res.ManagedAccount}, verdict{}, false
	case rbac.IsConflict(err):
		return mutate.Identity{}, deny(reasonRBACConflict, err.Error()), true
	case rbac.IsBound(err):
		// Policy, not failure: bindings the webhook did not write already
		// grant the account rights; only an admin can resolve it.
		return mutate.Identity{}, deny(reasonBoundAccount, err.Error()), true
	case rbac.IsRateLimited(err):
		return mutate.Identity{}, errored(http.StatusInternalServerError, reasonRateLimited,
			fmt.Errorf("ensuring ServiceAccount %s/%s and its token RBAC: %w", req.Namespace, serviceAccount, err)), true
	case errors.Is(err, context.DeadlineExceeded) && h.EnsureTimeout > 0:
		return mutate.Identity{}, errored(http.StatusInternalServerError, reasonEnsure,
			fmt.Errorf("ensuring ServiceAccount %s/%s and its token RBAC did not finish within --ensure-timeout (%s, counted from the start of the admission): %w",
				req.Namespace, serviceAccount, h.EnsureTimeout, err)), true
	default:
		return mutate.Identity{}, errored(http.StatusInternalServerError, reasonEnsure,
			fmt.Errorf("ensuring ServiceAccount %s/%s and its token RBAC: %w", req.Namespace, serviceAccount, err)), true
	}
}

// noRBACWarning tells the author of a pod naming an existing account that
// is not the webhook's and that its owner has not labelled that the pod
// gets its tokens but the account no right to mint more.
func noRBACWarning(namespace, serviceAccount string, ensured mutate.Identity) string {
	if serviceAccount == "" || ensured.RBAC {
		return ""
	}
	return fmt.Sprintf("ServiceAccount %s/%s exists and is not labelled %s=%s: no token RBAC ensured; the pod still gets its projected tokens, "+
		"but the account may not request tokens for itself. Its owner can allow that with: kubectl label serviceaccount -n %s %s %s=%s",
		namespace, serviceAccount, mutate.LabelInject, mutate.InjectEnabled, namespace, serviceAccount, mutate.LabelInject, mutate.InjectEnabled)
}

func appendIf(warnings []string, w string) []string {
	if w == "" {
		return warnings
	}
	return append(warnings, w)
}
