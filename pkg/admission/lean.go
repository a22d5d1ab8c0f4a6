package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
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
		err := errors.New("request body is empty")
		leanLog().Error(err, "bad request")
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	defer r.Body.Close()
	body, tooLarge, err := readBody(r)
	defer releaseBody(body)
	if err != nil {
		leanLog().Error(err, "unable to read the body from the incoming request")
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	if tooLarge {
		err := fmt.Errorf("request entity is too large; limit is %d bytes", maxRequestSize)
		leanLog().Error(err, "unable to read the body from the incoming request; limit reached")
		writeReview(w, admission.Errored(http.StatusRequestEntityTooLarge, err), nil)
		return
	}
	if contentType := r.Header.Get("Content-Type"); contentType != "application/json" {
		err := fmt.Errorf("contentType=%s, expected application/json", contentType)
		leanLog().Error(err, "unable to process a request with unknown content type")
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	req, pod, gvk, err := decodeReview(body, wh.pods)
	if err != nil {
		leanLog().Error(err, "unable to decode the request")
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	if req == nil {
		leanLog().Error(errNoRequest, "unable to decode the request")
		writeReview(w, admission.Errored(http.StatusBadRequest, errNoRequest), gvk)
		return
	}
	if pod != nil {
		ctx = withDecodedPod(ctx, req.Object.Raw, pod)
	}
	writeReview(w, wh.framework.Handle(ctx, *req), gvk)
}

// leanLog is the logger of a review that never reaches the handler, as
// admission.Webhook's: made only for such a review (a named logger is an
// allocation per admission).
func leanLog() logr.Logger { return logf.Log.WithName("admission") }
