package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// NewPodWebhook is the pod webhook's HTTP handler: controller-runtime's
// admission.Webhook around h, with one shortcut. admission.Webhook decodes
// each review with apimachinery's universal deserializer, which scans the
// body once for apiVersion and kind and again into the typed review; then
// Handle decodes the whole pod from the review's raw object a third time.
// Under load that was two thirds of the webhook's CPU (make bench profile).
// Here a review is read in one case-sensitive pass, review and the fields of
// the pod the handler reads (podFields) together, and answered as
// admission.Webhook answers: the same log fields, panic recovery, response
// completion and encoding in the review's version. Anything else (an empty,
// oversized or non-JSON body, another apiVersion or kind, no object, an
// object whose read fields do not decode) goes to admission.Webhook itself,
// so it is answered exactly as before.
//
// One difference, on input kube-apiserver never sends: a pod whose fields
// the handler does not read (env, probes, resources...) have the wrong JSON
// types is not refused with 400 here; the answer, like any, only patches the
// fields it read.
func NewPodWebhook(h *PodHandler) http.Handler {
	return &podWebhook{handler: h, general: &admission.Webhook{Handler: h}}
}

type podWebhook struct {
	handler *PodHandler
	general *admission.Webhook

	logOnce sync.Once
	log     logr.Logger
}

// maxReviewBytes is admission.Webhook's limit on a review's size.
const maxReviewBytes = 7 << 20

// podReview is an AdmissionReview (v1 or v1beta1: they are alike) whose
// object is decoded as a pod in the same pass.
type podReview struct {
	metav1.TypeMeta `json:",inline"`
	Request         *podRequest `json:"request,omitempty"`
}

type podRequest struct {
	admissionv1.AdmissionRequest `json:",inline"`
	// Object shadows AdmissionRequest.Object (a shallower field wins).
	Object *podFields `json:"object,omitempty"`
}

// podFields are the fields of a pod the handler reads: its metadata
// (screening, the log line, Events), and what mutate.Mutate and the patch
// read of its spec (the account fields, the volumes, each container's and
// init container's name and volume mounts). Every other field is skipped by
// the decoder instead of being built: half the cost of decoding a 5 KB pod.
// TestPodFieldsAreWhatMutateReads keeps this list in step with pkg/mutate.
type podFields struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		Volumes                  []corev1.Volume   `json:"volumes"`
		InitContainers           []containerFields `json:"initContainers"`
		Containers               []containerFields `json:"containers"`
		ServiceAccountName       string            `json:"serviceAccountName"`
		DeprecatedServiceAccount string            `json:"serviceAccount"`
	} `json:"spec"`
}

type containerFields struct {
	Name         string               `json:"name"`
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts"`
}

// pod is a Pod holding the fields read.
func (f *podFields) pod() *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: f.Metadata, Spec: corev1.PodSpec{
		Volumes:                  f.Spec.Volumes,
		InitContainers:           containers(f.Spec.InitContainers),
		Containers:               containers(f.Spec.Containers),
		ServiceAccountName:       f.Spec.ServiceAccountName,
		DeprecatedServiceAccount: f.Spec.DeprecatedServiceAccount,
	}}
	return pod
}

func containers(fs []containerFields) []corev1.Container {
	if fs == nil {
		return nil
	}
	out := make([]corev1.Container, len(fs))
	for i, c := range fs {
		out[i].Name, out[i].VolumeMounts = c.Name, c.VolumeMounts
	}
	return out
}

func (r *podReview) taken() bool {
	return (r.APIVersion == admissionv1.SchemeGroupVersion.String() || r.APIVersion == "admission.k8s.io/v1beta1") &&
		r.Kind == "AdmissionReview" && r.Request != nil && r.Request.Object != nil
}

func (wh *podWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.Header.Get("Content-Type") != "application/json" {
		wh.general.ServeHTTP(w, r)
		return
	}
	body, err := readBody(r)
	defer releaseBody(body)
	var review podReview
	if err == nil && len(body) <= maxReviewBytes {
		err = sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review)
	}
	if err != nil || len(body) > maxReviewBytes || !review.taken() {
		// Hand the body over as it came, read part first.
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		wh.general.ServeHTTP(w, r)
		return
	}
	req := admission.Request{AdmissionRequest: review.Request.AdmissionRequest}
	resp := wh.handle(r.Context(), req, review.Request.Object.pod())
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &resp.AdmissionResponse}
	if err := json.NewEncoder(w).Encode(&out); err != nil {
		wh.logger(nil).Error(err, "unable to encode and write the response")
	}
}

// bodies are the buffers reviews are read into: the decoder copies what it
// keeps, and both paths are done with the body when ServeHTTP returns, so a
// buffer serves the next review (a fresh one was a fifth of the bytes
// allocated per admission). Only reviews of up to maxPooledBody are pooled.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBody = 64 << 10

func releaseBody(b []byte) {
	if cap(b) <= maxPooledBody {
		b = b[:0]
		bodies.Put(&b)
	}
}

// readBody reads up to maxReviewBytes+1 bytes of the body, into one buffer
// of the announced length when there is one (io.ReadAll grows its buffer
// from 512 bytes).
func readBody(r *http.Request) ([]byte, error) {
	limited := io.LimitReader(r.Body, maxReviewBytes+1)
	if r.ContentLength <= 0 || r.ContentLength > maxReviewBytes {
		return io.ReadAll(limited)
	}
	buf := *bodies.Get().(*[]byte)
	if int64(cap(buf)) < r.ContentLength+1 {
		buf = make([]byte, 0, r.ContentLength+1)
	}
	buf = buf[:r.ContentLength]
	if n, err := io.ReadFull(limited, buf); err != nil {
		return buf[:n], err
	}
	// More than announced: read the rest the ordinary way.
	var one [1]byte
	n, err := limited.Read(one[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return buf, nil
	}
	rest, err := io.ReadAll(limited)
	return append(append(buf, one[:n]...), rest...), err
}

// handle is admission.Webhook.Handle for a decoded pod.
func (wh *podWebhook) handle(ctx context.Context, req admission.Request, pod *corev1.Pod) (resp admission.Response) {
	defer func() {
		if r := recover(); r != nil {
			for _, fn := range utilruntime.PanicHandlers {
				fn(ctx, r)
			}
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", r))
			resp.UID = req.UID
		}
	}()
	log := wh.logger(&req)
	resp = wh.handler.handle(logf.IntoContext(ctx, log), req, pod)
	if patch, ok := encodePatch(resp.Patches); ok {
		patchType := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType, resp.Patches = patch, &patchType, nil
	}
	if err := resp.Complete(req); err != nil {
		log.Error(err, "unable to encode response")
		resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("unable to encode response"))
		resp.UID = req.UID
	}
	return resp
}

// encodePatch writes the bytes Response.Complete's json.Marshal of ops
// would, without the detour through each operation's MarshalJSON and the
// re-scan of its output: half the cost, which was a twelfth of the
// webhook's CPU (make bench profile). An operation without a value (never
// ours) is left to Complete.
func encodePatch(ops []jsonpatch.JsonPatchOperation) ([]byte, bool) {
	if len(ops) == 0 {
		return nil, false
	}
	// Our patches are about 1.5 KB; the Encoder escapes HTML as
	// json.Marshal does.
	var buf bytes.Buffer
	buf.Grow(2048)
	enc := json.NewEncoder(&buf)
	field := func(name string, v any) bool {
		buf.WriteString(name)
		if err := enc.Encode(v); err != nil {
			return false
		}
		buf.Truncate(buf.Len() - 1) // Encode ends with a newline
		return true
	}
	buf.WriteByte('[')
	for i := range ops {
		if ops[i].Value == nil {
			return nil, false
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		if !field(`{"op":`, ops[i].Operation) || !field(`,"path":`, ops[i].Path) || !field(`,"value":`, ops[i].Value) {
			return nil, false
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return buf.Bytes(), true
}

// logger is admission.Webhook's: the "admission" logger with the request's
// fields.
func (wh *podWebhook) logger(req *admission.Request) logr.Logger {
	wh.logOnce.Do(func() { wh.log = logf.Log.WithName("admission") })
	return admission.DefaultLogConstructor(wh.log, req)
}
