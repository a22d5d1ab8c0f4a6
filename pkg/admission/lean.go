package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
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
//
// Without a LogConstructor of wh's own, the framework's logger of each
// request is requestLogger's: the same lines, for less CPU.
func Lean(wh *admission.Webhook) http.Handler {
	_, pods := wh.Handler.(*PodHandler)
	logConstructor := wh.LogConstructor
	if logConstructor == nil {
		logConstructor = requestLogger
	}
	return &leanWebhook{
		withContext: wh.WithContextFunc,
		pods:        pods,
		framework: &admission.Webhook{
			Handler:        patchEncoder{wh.Handler},
			RecoverPanic:   wh.RecoverPanic,
			LogConstructor: logConstructor,
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
	if r.Body == nil || r.Body == http.NoBody {
		refuse(w, http.StatusBadRequest, errors.New("request body is empty"), "bad request", nil)
		return
	}
	defer r.Body.Close()
	body, tooLarge, err := readBody(r)
	defer recycle(&bodies, body)
	if err != nil {
		refuse(w, http.StatusBadRequest, err, "unable to read the body from the incoming request", nil)
		return
	}
	if tooLarge {
		refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request entity is too large; limit is %d bytes", maxRequestSize),
			"unable to read the body from the incoming request; limit reached", nil)
		return
	}
	if contentType := r.Header.Get("Content-Type"); contentType != "application/json" {
		refuse(w, http.StatusBadRequest, fmt.Errorf("contentType=%s, expected application/json", contentType),
			"unable to process a request with unknown content type", nil)
		return
	}
	req, pod, gvk, err := decodeReview(body, wh.pods)
	switch {
	case err != nil:
		refuse(w, http.StatusBadRequest, err, "unable to decode the request", nil)
	case req == nil:
		refuse(w, http.StatusBadRequest, errNoRequest, "unable to decode the request", gvk)
	default:
		wh.answer(ctx, w, req, pod, gvk)
	}
}

// answer has the framework's Handle answer req and writes the answer. Apart
// from ServeHTTP, so that the decode, the deepest calls of an admission,
// runs under ServeHTTP's small frame rather than one with room for the
// request and the answer: a goroutine's stack then grows less often (each
// growth is a copy; they were 2 % of the webhook's CPU, make bench profile).
//
//go:noinline
func (wh *leanWebhook) answer(ctx context.Context, w http.ResponseWriter, req *admission.Request, pod *podFields, gvk *schema.GroupVersionKind) {
	if pod != nil {
		ctx = withDecodedPod(ctx, req.Object.Raw, pod)
	}
	resp := wh.framework.Handle(ctx, *req)
	writeReview(w, resp, gvk)
	recycle(&patches, resp.Patch) // written; nothing else holds it
}

// refuse logs and answers a review that does not reach the handler, with
// admission.Webhook's messages and codes.
//
//go:noinline
func refuse(w http.ResponseWriter, code int32, err error, msg string, gvk *schema.GroupVersionKind) {
	leanLog().Error(err, msg)
	writeReview(w, admission.Errored(code, err), gvk)
}

// leanLog is the logger of a review that never reaches the handler, as
// admission.Webhook's: made only for such a review (a named logger is an
// allocation per admission).
func leanLog() logr.Logger { return logf.Log.WithName("admission") }
