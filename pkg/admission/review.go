package admission

import (
	"bytes"
	"io"
	"net/http"
	"reflect"
	"sync"
	"unicode/utf16"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
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
// sends, is read in one pass (onePass); anything else (YAML, other
// apiVersions or kinds, anything the one pass refuses) goes through the
// universal deserializer, whose answer (and error message) is then the
// framework's by construction. With withPod, the one pass also decodes the
// request's object as a pod's fields, returned for the handler (nil when
// the universal deserializer decoded the review, or the object is null).
func decodeReview(body []byte, withPod bool) (*admission.Request, *podFields, *schema.GroupVersionKind, error) {
	if plainReview(body) {
		if req, pod, gvk, ok := onePass(body, withPod); ok {
			return req, pod, gvk, nil
		}
	}
	req, gvk, err := universalDecode(body)
	return req, nil, gvk, err
}

// universalDecode is admission.Webhook's decode: the universal
// deserializer into an unregistered wrapper of the v1 type.
func universalDecode(body []byte) (*admission.Request, *schema.GroupVersionKind, error) {
	req := &admission.Request{}
	review := unversionedReview{}
	review.Request = &req.AdmissionRequest
	review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	_, gvk, err := universal.Decode(body, nil, &review)
	if err != nil {
		return nil, nil, err
	}
	return withRequest(req), gvk, nil
}

// onePass reads a plain JSON review with encoding/json/v2's implementation
// (github.com/go-json-experiment/json), which validates while it decodes
// rather than scanning the body first, and decodes the pod's fields in the
// same pass instead of copying the object's bytes for a second decode: the
// review and pod decode took half the webhook's CPU, and this is about three
// times cheaper (BenchmarkDecodeReview). It reports false for whatever it does not
// read exactly as the framework's decode does (sigs.k8s.io/json,
// case-sensitive), which is then left to the framework: v2 refuses
// duplicate names and invalid UTF-8 that v1 accepts, and matches names
// case-sensitively as v1's case-sensitive decode does; for anything it
// accepts, TestOnePassIsTheFrameworkDecode and FuzzReviewDecode hold its
// request, and the pod fields, to the framework's.
func onePass(body []byte, withPod bool) (*admission.Request, *podFields, *schema.GroupVersionKind, bool) {
	in := &requestIn{Object: objectIn{body: body, withPod: withPod}}
	review := reviewIn{Request: in}
	if err := jsonv2.Unmarshal(body, &review); err != nil {
		return nil, nil, nil, false
	}
	gvk, ok := plainKinds[review.TypeMeta]
	if !ok {
		return nil, nil, nil, false
	}
	if review.Request == nil { // "request": null
		return nil, nil, &gvk, true
	}
	req := &admission.Request{AdmissionRequest: in.AdmissionRequest}
	req.Object.Raw, req.OldObject.Raw, req.Options.Raw = in.Object.raw, in.OldObject.raw, in.Options.raw
	if req = withRequest(req); req == nil {
		return nil, nil, &gvk, true
	}
	return req, in.Object.pod, &gvk, true
}

// reviewIn is admissionv1.AdmissionReview as onePass reads it
// (envelope.go): the same members (a response, which no one sends, must
// still decode, as the framework's decode requires), and the request's
// RawExtensions read by objectIn and rawIn.
type reviewIn struct {
	metav1.TypeMeta `json:",inline"`
	Request         *requestIn                     `json:"request"`
	Response        *admissionv1.AdmissionResponse `json:"response"`
}

type requestIn struct {
	admissionv1.AdmissionRequest `json:",inline"`
	Object                       objectIn `json:"object"`
	OldObject                    rawIn    `json:"oldObject"`
	Options                      rawIn    `json:"options"`
}

// rawIn reads a value as runtime.RawExtension.UnmarshalJSON does: its
// bytes copied, null left empty.
type rawIn struct{ raw []byte }

func (r *rawIn) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if v.Kind() != 'n' {
		r.raw = bytes.Clone(v)
	}
	return nil
}

// objectIn is request.object: read as rawIn, or, with withPod, decoded as
// a pod's fields on the way and its bytes cut from body by offset.
type objectIn struct {
	body    []byte
	withPod bool
	raw     []byte
	pod     *podFields
}

func (o *objectIn) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if !o.withPod || dec.PeekKind() == 'n' {
		r := rawIn{}
		err := r.UnmarshalJSONFrom(dec)
		o.raw = r.raw
		return err
	}
	start := dec.InputOffset() // just after the name "object"
	pod := &podFields{}
	if err := pod.readFrom(dec, o.body); err != nil {
		return err
	}
	// The env of a pod that asks for it, from its offsets: the annotation
	// may come after the spec.
	err := pod.decodeEnv(unmarshalV2, func(e *envIn) []byte { return valueAt(o.body, e.start, e.end) })
	if err != nil {
		return err
	}
	// The object's bytes in the body itself, not a copy (a copy was an
	// eighth of the bytes allocated per admission): the body outlives
	// every read of the request (see bodies).
	o.raw = valueAt(o.body, start, dec.InputOffset())
	o.pod = pod
	return nil
}

// valueAt is the value between start, just after its name or the token
// before it in an array, and end in body: JSON allows whitespace and a
// colon between a name and its value, whitespace and a comma between
// two elements.
func valueAt(body []byte, start, end int64) []byte {
	return bytes.TrimLeft(body[start:end], " \t\r\n:,")
}

// unmarshalV2 is onePass's decoder, for a value it had skipped.
func unmarshalV2(b []byte, v any) error { return jsonv2.Unmarshal(b, v) }

// withRequest is req, or nil if it is empty.
func withRequest(req *admission.Request) *admission.Request {
	if reflect.ValueOf(req.AdmissionRequest).IsZero() {
		return nil
	}
	return req
}

// These spell apiVersion or kind to encoding/json without spelling them
// byte for byte: the two non-ASCII letters that fold to an ASCII one of
// those names (the Kelvin sign to k, the long s to s; unicode.SimpleFold
// folds no other to an ASCII letter), and an escape (\uXXXX) of a letter.
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
	if bytes.Contains(body, kelvin) || bytes.Contains(body, longS) || !lettersUnescaped(body) {
		return false
	}
	return !spelledOtherwise(body, "kind", 'k', 0) && !spelledOtherwise(body, "kind", 'K', 0) &&
		!spelledOtherwise(body, "apiVersion", 'v', 3) && !spelledOtherwise(body, "apiVersion", 'V', 3)
}

// lettersUnescaped reports whether no \uXXXX escape in body can stand for
// a letter of apiVersion or kind, so that a name that decodes to either, in
// any case, has every letter as a byte in the body, where spelledOtherwise
// finds it: each escape must be of a code point that is neither an ASCII
// letter nor one that folds to one, nor half of a surrogate pair (which
// this check would have to pair up to judge). kube-apiserver writes its
// reviews with Go's HTML-safe JSON, which escapes &, <, > (\u0026, \u003c,
// \u003e), U+2028 and U+2029, and control characters: pods whose command
// holds && or a query string keep the one pass. A \u after an escaped
// backslash (\\u) is text, not an escape; it is judged as one all the same,
// which only ever sends a body to the framework's path.
func lettersUnescaped(body []byte) bool {
	for i := 0; ; {
		j := bytes.Index(body[i:], escapeU)
		if j < 0 {
			return true
		}
		i += j + len(escapeU)
		if len(body)-i < 4 {
			return false
		}
		r, ok := hex4(body[i : i+4])
		if !ok || 'a' <= r|0x20 && r|0x20 <= 'z' || r == 0x212a || r == 0x017f || utf16.IsSurrogate(r) {
			return false
		}
	}
}

// hex4 is the code point of four hex digits.
func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c|0x20 && c|0x20 <= 'f':
			c = (c | 0x20) - 'a' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
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

// bodies are the buffers reviews are read into. The decoders copy what they
// keep, but for the pod's object bytes (objectIn), which the request given
// to the handler points into: the handler reads them only while it
// answers, and nothing, an ensure that outlives the admission included,
// keeps them. So once ServeHTTP has written the answer a buffer serves the
// next review (a fresh one was a fifth of the bytes allocated per
// admission). Buffers of up to maxPooledBody are kept.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBody = 64 << 10

// recycle gives b back to pool, the bodies' or the patches', unless it is
// empty or grew past maxPooledBody.
func recycle(pool *sync.Pool, b []byte) {
	if cap(b) > 0 && cap(b) <= maxPooledBody {
		b = b[:0]
		pool.Put(&b)
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
