package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// TestAppendReviewIsEncode holds appendReview to json.Encoder on the
// answers the handler gives, and checks that it refuses, for encoding/json
// to write, what it does not write alike; writeReview's bytes are
// json.Encoder's either way.
func TestAppendReviewIsEncode(t *testing.T) {
	patched := admission.Patched("")
	patched.Patch = []byte(`[{"op":"add","path":"/spec/volumes/-","value":{"name":"token-projector"}}]`)
	patchType := admissionv1.PatchTypeJSONPatch
	patched.PatchType = &patchType
	patched.Warnings = []string{`defaulted "token-projector.io/expiration" to 1h`, "second"}
	completed := admission.Allowed("")
	if err := completed.Complete(admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "uid-1"}}); err != nil {
		t.Fatal(err)
	}
	withStatusWord := admission.Denied("no")
	withStatusWord.Result.Status = metav1.StatusFailure
	withStatusWord.UID = "u"

	written := map[string]admission.Response{
		"allowed":             admission.Allowed("only pod creation is handled"),
		"completed":           completed,
		"denied, quotes":      admission.Denied(`token-projector.io/expiration "5m" is below 10m0s; give a \ value`),
		"errored":             admission.Errored(http.StatusBadRequest, errors.New("decoding the pod: bad")),
		"patched, warnings":   patched,
		"status word":         withStatusWord,
		"empty warnings":      admission.Allowed("x").WithWarnings(),
		"empty response":      {},
		"no status, uid only": {AdmissionResponse: admissionv1.AdmissionResponse{UID: "abc", Allowed: true}},
	}
	refused := map[string]admission.Response{
		"audit annotations": {AdmissionResponse: admissionv1.AdmissionResponse{AuditAnnotations: map[string]string{"a": "b"}}},
		"html in a message": admission.Denied("a <b> & c"),
		"non-ASCII warning": admission.Allowed("").WithWarnings("é"),
		"control character": admission.Denied("line\nbreak"),
		"status details":    {AdmissionResponse: admissionv1.AdmissionResponse{Result: &metav1.Status{Details: &metav1.StatusDetails{Name: "x"}}}},
		"status kind":       {AdmissionResponse: admissionv1.AdmissionResponse{Result: &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status"}}}},
		"status list meta":  {AdmissionResponse: admissionv1.AdmissionResponse{Result: &metav1.Status{ListMeta: metav1.ListMeta{Continue: "c"}}}},
		"non-ASCII uid":     {AdmissionResponse: admissionv1.AdmissionResponse{UID: "ü"}},
	}
	gvks := map[string]*schema.GroupVersionKind{
		"no kind": nil,
		"v1":      {},
		"v1beta1": ptrTo(admissionv1beta1.SchemeGroupVersion.WithKind("AdmissionReview")),
	}
	for gvkName, gvk := range gvks {
		for _, set := range []struct {
			responses map[string]admission.Response
			fast      bool
		}{{written, true}, {refused, false}} {
			for name, resp := range set.responses {
				var want, got bytes.Buffer
				review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
				switch {
				case gvk == nil:
				case *gvk == (schema.GroupVersionKind{}):
					review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
				default:
					review.SetGroupVersionKind(*gvk)
				}
				if err := json.NewEncoder(&want).Encode(review); err != nil {
					t.Fatal(err)
				}
				b, ok := appendReview(nil, &review)
				switch {
				case ok != set.fast:
					t.Errorf("%s, %s: appendReview wrote it: %v, want %v", gvkName, name, ok, set.fast)
				case ok && string(b) != want.String():
					t.Errorf("%s, %s: appendReview wrote\n%s\njson.Encoder\n%s", gvkName, name, b, want.Bytes())
				}
				writeReview(&got, resp, gvk)
				if got.String() != want.String() {
					t.Errorf("%s, %s: writeReview wrote\n%s\njson.Encoder\n%s", gvkName, name, got.Bytes(), want.Bytes())
				}
			}
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
