package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf16"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestPlainReview: a body takes the one-pass decode only if no string in it
// spells apiVersion or kind other than exactly, as encoding/json's
// case-insensitive reading of the universal deserializer would take it.
func TestPlainReview(t *testing.T) {
	for body, want := range map[string]bool{
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"},"name":"kinder","x":"vkind"}}`: true,
		`{"apiVersion":"v1","resourceVersion":"1","version":"v1","Version":"x","kubernetes.io/k":"K"}`:                                true,
		`{"kind":"a","Kind":"b"}`:        false,
		`{"kind":"a","KIND":"b"}`:        false,
		`{"x":{"kiNd":"b"}}`:             false,
		`{"apiversion":"v1"}`:            false,
		`{"APIVERSION":"v1"}`:            false,
		`{"ApiVersion":"v1"}`:            false,
		`{"\u006bind":"b"}`:              false,
		"{\"\u212aind\":\"b\"}":          false,
		"{\"x\":\"\u017f\"}":             false, // any long s or Kelvin sign: the framework's path
		"{\"apiVer\u017fion\":\"b\"}":    false,
		`{"kind":"x","apiVersion":"v1"}`: true,
		`{"x":"a \u0026\u0026 b \u003c c \u003e d \u2028\u2029 \u0000 \u00e9"}`: true,
		`{"\u004Bind":"b"}`:             false,
		`{"\u004bind":"b"}`:             false,
		`{"\u212aind":"b"}`:             false,
		`{"\u212Aind":"b"}`:             false,
		`{"apiVer\u017Fion":"b"}`:       false,
		`{"x":"\ud83d\ude00"}`:          false, // surrogates: not judged
		`{"x":"\\u006bind"}`:            false, // text, not an escape, judged as one
		`{"x":"\\u0026"}`:               true,
		`{"x":"\u00"}`:                  false,
		`{"x":"\u00zz"}`:                false,
		`{"kind":"x","apiVersion":"v1"`: true, // not JSON: the decode refuses it, not this check
		`"`:                             true,
		`{"k`:                           true,
	} {
		if got := plainReview([]byte(body)); got != want {
			t.Errorf("plainReview(%s) = %v, want %v", body, got, want)
		}
	}
}

// TestPlainReviewEscapes: of every \uXXXX escape, plainReview refuses
// exactly those encoding/json decodes to a letter that folds to an ASCII
// one (bytes.EqualFold, as its case-insensitive names match), and
// surrogates; every other escape (kube-apiserver's \u0026, \u003c, \u003e,
// \u2028, \u2029 among them) keeps the one pass.
func TestPlainReviewEscapes(t *testing.T) {
	refused := 0
	for r := range rune(0x10000) {
		body := fmt.Sprintf(`{"x":"\u%04x"}`, r)
		want := true
		if utf16.IsSurrogate(r) {
			want = false
		} else {
			var v struct{ X string }
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatal(err)
			}
			for l := 'A'; l <= 'z'; l++ {
				if ('A' <= l && l <= 'Z' || 'a' <= l && l <= 'z') && bytes.EqualFold([]byte(v.X), []byte(string(l))) {
					want = false
				}
			}
		}
		if got := plainReview([]byte(body)); got != want {
			t.Errorf("plainReview(%s) = %v, want %v", body, got, want)
		}
		if !want {
			refused++
		}
	}
	// 52 ASCII letters, the Kelvin sign, the long s, 2048 surrogates.
	if refused != 52+2+2048 {
		t.Errorf("refused %d escapes, want %d", refused, 52+2+2048)
	}
}

// TestKubeAPIServerEscapesTakeOnePass: kube-apiserver writes reviews with
// Go's HTML-safe JSON, so a pod whose command holds && or a query string,
// or a redirection, reaches the webhook with \u0026, \u003c, \u003e. Such a
// review is read in one pass, exactly as the framework reads it; the same
// review with an escape spelling a letter of kind goes to the framework.
func TestKubeAPIServerEscapesTakeOnePass(t *testing.T) {
	pod, err := json.Marshal(corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", Annotations: map[string]string{mutate.AnnotationAudience: "vault", "example.com/note": "line\u2028separator"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "curl",
			Command: []string{"sh", "-c", "test -f /a && curl 'http://svc/?a=1&b=2' > /tmp/out < /dev/null"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "uid-escaped", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "demo",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: pod},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, escape := range []string{`\u0026\u0026`, `\u003c`, `\u003e`, `?a=1\u0026b=2`, `\u2028`} {
		if !bytes.Contains(body, []byte(escape)) {
			t.Fatalf("the review does not hold %s, as kube-apiserver's would: %s", escape, body)
		}
	}
	if !sameAsFramework(t, body) {
		t.Errorf("the review took the framework's path: %s", body)
	}
	for _, kind := range []string{`\u006bind`, `\u004Bind`, `\u004bind`, `\u212aind`, `\u212Aind`, `k\u0069nd`, `KIN\u0044`} {
		spelled := bytes.Replace(body, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"AdmissionReview","`+kind+`":"Other"`), 1)
		if plainReview(spelled) {
			t.Errorf("a review with the name %s takes the one pass", kind)
		}
		sameAsFramework(t, spelled)
	}
}

// TestReadBodyDoesNotTrustTheAnnouncedLength: a request announcing the
// limit but sending a few bytes gets a buffer of the pooled size, not one of
// the announced size; the body read is what was sent.
func TestReadBodyDoesNotTrustTheAnnouncedLength(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, PodsPath, strings.NewReader(`{"a":1}`))
	r.ContentLength = maxRequestSize
	body, tooLarge, err := readBody(r)
	if err != nil || tooLarge || string(body) != `{"a":1}` {
		t.Fatalf("readBody = %q, %v, %v", body, tooLarge, err)
	}
	if cap(body) > maxPooledBody+1 {
		t.Errorf("a buffer of %d bytes for a 7-byte body announced as %d", cap(body), r.ContentLength)
	}
}
