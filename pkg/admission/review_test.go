package admission

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
		`{"kind":"x","apiVersion":"v1"`:  true, // not JSON: the decode refuses it, not this check
		`"`:                              true,
		`{"k`:                            true,
	} {
		if got := plainReview([]byte(body)); got != want {
			t.Errorf("plainReview(%s) = %v, want %v", body, got, want)
		}
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
