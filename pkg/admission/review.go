package admission

import (
	"bytes"
	"io"
	"net/http"
	"reflect"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// universal is admission.Webhook's decoder: apimachinery's universal
// deserializer over a scheme of the v1 and v1beta1 AdmissionReview.
var universal = func() runtime.Decoder {
	s := runtime.NewScheme()
	utilruntime.Must(admissionv1.AddToScheme(s))
	utilruntime.Must(admissionv1beta1.AddToScheme(s))
	return serializer.NewCodecFactory(s).UniversalDeserializer()
}()

// unversionedReview decodes v1 and v1beta1 reviews (they are alike) into the
// v1 type: not being registered, it is decoded as it is, whatever the body's
// apiVersion, as admission.Webhook's own such type.
type unversionedReview struct {
	admissionv1.AdmissionReview
}

// plainKinds are the review kinds the one-pass decode takes, with the kind
// the universal deserializer reports for each.
var plainKinds = map[metav1.TypeMeta]schema.GroupVersionKind{
	{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}:      admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"),
	{APIVersion: "admission.k8s.io/v1beta1", Kind: "AdmissionReview"}: admissionv1beta1.SchemeGroupVersion.WithKind("AdmissionReview"),
}

// decodeReview decodes a review as admission.Webhook does and returns its
// request (nil when it has none: missing, null or empty) and the kind it
// reports, for the answer. A plain JSON review, which is what kube-apiserver
// sends, is read in one case-sensitive pass; anything else (YAML, other
// apiVersions or kinds, anything that does not decode) goes through the
// universal deserializer, whose answer (and error message) is then the
// framework's by construction.
func decodeReview(body []byte) (*admission.Request, *schema.GroupVersionKind, error) {
	req := &admission.Request{}
	if plainReview(body) {
		// As admission.Webhook: the request decodes into the one handed on,
		// even if a later "request": null drops the review's pointer to it.
		review := admissionv1.AdmissionReview{Request: &req.AdmissionRequest}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review); err == nil {
			if gvk, ok := plainKinds[review.TypeMeta]; ok {
				return withRequest(req), &gvk, nil
			}
		}
		*req = admission.Request{}
	}
	review := unversionedReview{}
	review.Request = &req.AdmissionRequest
	review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	_, gvk, err := universal.Decode(body, nil, &review)
	if err != nil {
		return nil, nil, err
	}
	return withRequest(req), gvk, nil
}

// withRequest is req, or nil if it is empty.
func withRequest(req *admission.Request) *admission.Request {
	if reflect.ValueOf(req.AdmissionRequest).IsZero() {
		return nil
	}
	return req
}

// These spell apiVersion or kind to encoding/json without spelling them
// byte for byte: an escape, and the two non-ASCII letters that fold to an
// ASCII one of those names (the Kelvin sign to k, the long s to s).
var (
	escapeU = []byte(`\u`)
	kelvin  = []byte("\u212a")
	longS   = []byte("\u017f")
)

// plainReview reports whether the universal deserializer's first pass, a
// case-insensitive encoding/json read of the top-level apiVersion and kind,
// can only see what the one case-sensitive pass sees: no string in the body
// spells either name but exactly, in any case, escape or folding letter.
// Anything else (any "Kind" anywhere, say) takes the framework's path.
func plainReview(body []byte) bool {
	if bytes.Contains(body, escapeU) || bytes.Contains(body, kelvin) || bytes.Contains(body, longS) {
		return false
	}
	return !spelledOtherwise(body, "kind", 'k', 0) && !spelledOtherwise(body, "kind", 'K', 0) &&
		!spelledOtherwise(body, "apiVersion", 'v', 3) && !spelledOtherwise(body, "apiVersion", 'V', 3)
}

// spelledOtherwise reports whether a string in body spells name in another
// case. Candidates are found by name's letter at offset at, in the case c,
// with a vectorised search for that one byte: comparing at every quote was
// a third of the cost of decoding the review.
func spelledOtherwise(body []byte, name string, c byte, at int) bool {
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], c)
		if j < 0 {
			return false
		}
		start := i + j - at
		i += j + 1
		if start >= 1 && body[start-1] == '"' && otherCase(body[start:], name) {
			return true
		}
	}
}

// otherCase reports whether s starts with name in another case, then a quote.
func otherCase(s []byte, name string) bool {
	return len(s) > len(name) && s[len(name)] == '"' &&
		bytes.EqualFold(s[:len(name)], []byte(name)) && string(s[:len(name)]) != name
}

// bodies are the buffers reviews are read into: the decoders copy what they
// keep and nothing holds the body once ServeHTTP returns, so a buffer serves
// the next review (a fresh one was a fifth of the bytes allocated per
// admission). Buffers of up to maxPooledBody are kept.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBody = 64 << 10

func releaseBody(b []byte) {
	if cap(b) <= maxPooledBody {
		b = b[:0]
		bodies.Put(&b)
	}
}

// readBody is admission.Webhook's io.ReadAll of the body through an
// io.LimitedReader of maxRequestSize (too large once that is used up), into
// a pooled buffer of the announced length (up to maxPooledBody) rather than
// one grown from 512 bytes.
func readBody(r *http.Request) (body []byte, tooLarge bool, err error) {
	limited := &io.LimitedReader{R: r.Body, N: maxRequestSize}
	b := (*bodies.Get().(*[]byte))[:0]
	// Sized by the announced length only up to what is pooled: a client
	// announcing megabytes it never sends gets no such buffer up front.
	if want := int(min(r.ContentLength, maxPooledBody)) + 1; cap(b) < want {
		b = make([]byte, 0, max(want, 512))
	}
	for {
		n, err := limited.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, limited.N <= 0, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // as io.ReadAll: let append grow it
		}
	}
}
