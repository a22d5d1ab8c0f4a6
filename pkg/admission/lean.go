package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Lean serves wh's handler over HTTP as wh.ServeHTTP does, for less CPU.
// controller-runtime's admission.Webhook decodes every review with
// apimachinery's universal deserializer: a full encoding/json pass over the
// 5 KB body for its apiVersion and kind, then the typed decode; and it
// marshals the patch operations one MarshalJSON at a time. Under load that
// was about a third of the webhook's CPU (make bench profile). Lean reads a
// plain JSON review in one case-sensitive pass (decodeReview's onePass),
// writes the patch directly (encodePatch), and hands everything else to the
// deserializer itself.
// Everything between the two stays the framework's: wh's Handle (the
// "admission" logger, panic recovery and its metric, Response.Complete),
// and the decisions stay in wh.Handler. controller-runtime's webhook server,
// where Lean is registered, keeps TLS, certificate reload, probes and the
// controller_runtime_webhook_* metrics, which it adds around any handler.
//
// When wh's handler is a *PodHandler, Lean decodes the pod's fields in the
// review's pass and hands them to it with the request (withDecodedPod): a
// second decode of the object's bytes was a quarter of the webhook's CPU.
// The handler decodes the object itself whenever they are not there.
//
// Its answers are wh's (TestLeanAnswersAsAdmissionWebhook and the fuzz
// targets hold it to that), with one deliberate difference: a review whose
// request is missing, null or empty gets a 400, as any other malformed
// review, where admission.Webhook hands the handler an empty request.
func Lean(wh *admission.Webhook) http.Handler {
	_, pods := wh.Handler.(*PodHandler)
	return &leanWebhook{
		withContext: wh.WithContextFunc,
		pods:        pods,
		framework: &admission.Webhook{
			Handler:        patchEncoder{wh.Handler},
			RecoverPanic:   wh.RecoverPanic,
			LogConstructor: wh.LogConstructor,
		},
	}
}

type leanWebhook struct {
	withContext func(context.Context, *http.Request) context.Context
	pods        bool // decode the request's object as a pod in the review's pass
	framework   *admission.Webhook
}

// maxRequestSize is admission.Webhook's limit on a review.
const maxRequestSize = int64(7 * 1024 * 1024)

// errNoRequest answers a review that carries no request.
var errNoRequest = errors.New("the AdmissionReview has no request")

// ServeHTTP follows admission.Webhook.ServeHTTP step for step: the same
// checks in the same order, the same messages and codes.
func (wh *leanWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if wh.withContext != nil {
		ctx = wh.withContext(ctx, r)
	}
	log := logf.Log.WithName("admission")
	if r.Body == nil || r.Body == http.NoBody {
		err := errors.New("request body is empty")
		log.Error(err, "bad request")
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	defer r.Body.Close()
	body, tooLarge, err := readBody(r)
	defer releaseBody(body)
	if err != nil {
		log.Error(err, "unable to read the body from the incoming request")
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	if tooLarge {
		err := fmt.Errorf("request entity is too large; limit is %d bytes", maxRequestSize)
		log.Error(err, "unable to read the body from the incoming request; limit reached")
		writeReview(w, admission.Errored(http.StatusRequestEntityTooLarge, err), nil)
		return
	}
	if contentType := r.Header.Get("Content-Type"); contentType != "application/json" {
		err := fmt.Errorf("contentType=%s, expected application/json", contentType)
		log.Error(err, "unable to process a request with unknown content type")
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	req, pod, gvk, err := decodeReview(body, wh.pods)
	if err != nil {
		log.Error(err, "unable to decode the request")
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	if req == nil {
		log.Error(errNoRequest, "unable to decode the request")
		writeReview(w, admission.Errored(http.StatusBadRequest, errNoRequest), gvk)
		return
	}
	if pod != nil {
		ctx = withDecodedPod(ctx, req.Object.Raw, pod)
	}
	writeReview(w, wh.framework.Handle(ctx, *req), gvk)
}

// writeReview writes resp as an AdmissionReview of the version asked in
// (v1 when none), as admission.Webhook does; an answer to a review that did
// not decode (gvk nil) carries no apiVersion or kind.
func writeReview(w io.Writer, resp admission.Response, gvk *schema.GroupVersionKind) {
	review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	switch {
	case gvk == nil:
	case *gvk == (schema.GroupVersionKind{}):
		review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	default:
		review.SetGroupVersionKind(*gvk)
	}
	if err := json.NewEncoder(w).Encode(review); err != nil {
		// As admission.Webhook: the connection is most likely gone; one try.
		logf.Log.WithName("admission").Error(err, "unable to encode and write the response")
		serverError := admission.Errored(http.StatusInternalServerError, err)
		if err := json.NewEncoder(w).Encode(admissionv1.AdmissionReview{Response: &serverError.AdmissionResponse}); err != nil {
			logf.Log.WithName("admission").Error(err, "still unable to encode and write the InternalServerError response")
		}
	}
}
