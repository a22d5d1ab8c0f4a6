package admission

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// writeReview writes resp as an AdmissionReview of the version asked in
// (v1 when none), as admission.Webhook does; an answer to a review that did
// not decode (gvk nil) carries no apiVersion or kind. The answers the
// handler gives are written as json.Encoder would write them, without its
// reflection (appendReview: encoding/json was a twentieth of the webhook's
// CPU, for a few hundred bytes and the patch); any other goes through
// encoding/json.
func writeReview(w io.Writer, resp admission.Response, gvk *schema.GroupVersionKind) {
	review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	switch {
	case gvk == nil:
	case *gvk == (schema.GroupVersionKind{}):
		review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	default:
		review.SetGroupVersionKind(*gvk)
	}
	buf := answers.Get().(*[]byte)
	defer releaseAnswer(buf)
	var err error
	if b, ok := appendReview((*buf)[:0], &review); ok {
		*buf = b
		_, err = w.Write(b)
	} else {
		err = json.NewEncoder(w).Encode(review)
	}
	if err != nil {
		// As admission.Webhook: the connection is most likely gone; one try.
		leanLog().Error(err, "unable to encode and write the response")
		serverError := admission.Errored(http.StatusInternalServerError, err)
		if err := json.NewEncoder(w).Encode(admissionv1.AdmissionReview{Response: &serverError.AdmissionResponse}); err != nil {
			leanLog().Error(err, "still unable to encode and write the InternalServerError response")
		}
	}
}

// answers are the buffers answers are written in before they are sent;
// those grown past maxPooledBody (long warnings) are dropped.
var answers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func releaseAnswer(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		answers.Put(b)
	}
}

// appendReview appends review as json.Encoder.Encode writes it (its
// newline included) when it holds only what the handler's answers hold: a
// response with a UID, allowed, a status of a code, message, reason and
// status word, a patch and its type, warnings; and every string one
// appendString writes. Anything else is left to encoding/json (false).
// TestAppendReviewIsEncode holds it to json.Encoder.
func appendReview(b []byte, review *admissionv1.AdmissionReview) ([]byte, bool) {
	r := review.Response
	if review.Request != nil || r == nil || r.AuditAnnotations != nil {
		return b, false
	}
	ok := true
	b = append(b, '{')
	sep := ""
	if review.Kind != "" {
		b = append(b, `"kind":`...)
		b, ok = appendString(b, review.Kind)
		sep = ","
	}
	if review.APIVersion != "" {
		b = append(b, sep+`"apiVersion":`...)
		b, ok = andString(b, ok, review.APIVersion)
		sep = ","
	}
	b = append(b, sep+`"response":{"uid":`...)
	b, ok = andString(b, ok, string(r.UID))
	b = strconv.AppendBool(append(b, `,"allowed":`...), r.Allowed)
	if r.Result != nil {
		b, ok = appendStatus(append(b, `,"status":`...), ok, r.Result)
	}
	if len(r.Patch) > 0 {
		b = append(base64.StdEncoding.AppendEncode(append(b, `,"patch":"`...), r.Patch), '"')
	}
	if r.PatchType != nil {
		b = append(b, `,"patchType":`...)
		b, ok = andString(b, ok, string(*r.PatchType))
	}
	if len(r.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, w := range r.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b, ok = andString(b, ok, w)
		}
		b = append(b, ']')
	}
	return append(b, "}}\n"...), ok
}

// appendStatus writes a status of a code, message, reason and status word.
func appendStatus(b []byte, ok bool, s *metav1.Status) ([]byte, bool) {
	if s.TypeMeta != (metav1.TypeMeta{}) || s.ListMeta != (metav1.ListMeta{}) || s.Details != nil {
		return b, false
	}
	b = append(b, `{"metadata":{}`...)
	for _, f := range [...]struct{ name, value string }{{`,"status":`, s.Status}, {`,"message":`, s.Message}, {`,"reason":`, string(s.Reason)}} {
		if f.value != "" {
			b, ok = andString(append(b, f.name...), ok, f.value)
		}
	}
	if s.Code != 0 {
		b = strconv.AppendInt(append(b, `,"code":`...), int64(s.Code), 10)
	}
	return append(b, '}'), ok
}

// andString is appendString after ok: false stays false.
func andString(b []byte, ok bool, s string) ([]byte, bool) {
	b, wrote := appendString(b, s)
	return b, ok && wrote
}
