package admission_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tpadmission "github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/test/bench/fixture"
)

// answer posts body with contentType to h and returns the status and the
// decoded JSON of the answer.
func answer(t testing.TB, h http.Handler, body []byte, contentType string) (int, any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, tpadmission.PodsPath, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var out any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not JSON (%v): %s", err, w.Body)
	}
	return w.Code, out
}

// bothWebhooks are NewPodWebhook and controller-runtime's admission.Webhook
// around the same handler.
func bothWebhooks() (fast, general http.Handler) {
	wh := fuzzWebhook(&recordingEnsurer{})
	return tpadmission.NewPodWebhook(wh.Handler.(*tpadmission.PodHandler)), wh
}

// samePodWebhookAnswer checks that fast answers body exactly as general,
// but for the one documented difference: a pod general refuses to decode
// whole may be admitted on the fields fast reads.
func samePodWebhookAnswer(t testing.TB, fast, general http.Handler, body []byte, contentType string) {
	t.Helper()
	fastCode, fastAnswer := answer(t, fast, body, contentType)
	code, want := answer(t, general, body, contentType)
	if undecodablePod(want) {
		return
	}
	if fastCode != code || !reflect.DeepEqual(fastAnswer, want) {
		t.Fatalf("NewPodWebhook answered HTTP %d %v\nadmission.Webhook answered HTTP %d %v\nfor %.500q", fastCode, fastAnswer, code, want, body)
	}
}

// undecodablePod reports whether a decoded answer is the handler's 400 for
// a pod it could not decode.
func undecodablePod(answer any) bool {
	review, _ := answer.(map[string]any)
	resp, _ := review["response"].(map[string]any)
	status, _ := resp["status"].(map[string]any)
	msg, _ := status["message"].(string)
	return status["code"] == float64(http.StatusBadRequest) && strings.HasPrefix(msg, "decoding the pod: ")
}

// TestPodWebhookReadsOnlyWhatItNeeds shows the documented difference: a
// wrong JSON type in a field the handler never reads (a container's ports)
// is refused by admission.Webhook, which decodes the whole pod, and not by
// NewPodWebhook. kube-apiserver, which encodes the pod from its typed form,
// never sends one.
func TestPodWebhookReadsOnlyWhatItNeeds(t *testing.T) {
	logf.SetLogger(logr.Discard())
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"demo",` +
		`"kind":{"version":"v1","kind":"Pod"},"object":{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},` +
		`"spec":{"containers":[{"name":"app","ports":"not a list"}]}}}}`)
	fast, general := bothWebhooks()
	if _, got := answer(t, general, body, "application/json"); !undecodablePod(got) {
		t.Fatalf("admission.Webhook: %v, want a 400 for the pod", got)
	}
	_, got := answer(t, fast, body, "application/json")
	resp, _ := got.(map[string]any)["response"].(map[string]any)
	if resp["allowed"] != true || resp["patch"] == nil {
		t.Errorf("NewPodWebhook: %v, want the pod admitted with a patch", got)
	}
}

// TestPodWebhookAnswersAsAdmissionWebhook runs every seed review (golden
// pods, forged and malformed reviews), the benchmarks' pod, and bodies the
// shortcut must hand to admission.Webhook, through both handlers.
func TestPodWebhookAnswersAsAdmissionWebhook(t *testing.T) {
	logf.SetLogger(logr.Discard())
	bodies := seedReviews(t)
	b, err := fixture.Body(fixture.UID("bench", 1), fuzzOptedIn, fixture.Pod(1, "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	bodies["benchmark pod"] = b
	bodies["v1beta1"] = bytes.Replace(b, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1)
	bodies["other kind"] = bytes.Replace(b, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"Review"`), 1)
	bodies["object null"] = []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"demo","kind":{"version":"v1","kind":"Pod"},"object":null}}`)
	bodies["object not a pod"] = []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"demo","kind":{"version":"v1","kind":"Pod"},"object":{"spec":{"containers":"x"}}}}`)
	bodies["empty"] = []byte{}
	bodies["oversized"] = append(append([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"metadata":{"name":"`),
		bytes.Repeat([]byte("a"), 7<<20)...), []byte(`"}}}}`)...)
	fast, general := bothWebhooks()
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			samePodWebhookAnswer(t, fast, general, body, "application/json")
		})
	}
	t.Run("content type", func(t *testing.T) { samePodWebhookAnswer(t, fast, general, b, "text/plain") })
}

// FuzzPodWebhook posts arbitrary bodies to NewPodWebhook and to
// admission.Webhook: the answers must be the same. Seeds: those of
// FuzzAdmissionReview.
func FuzzPodWebhook(f *testing.F) {
	logf.SetLogger(logr.Discard())
	seeds, _ := filepath.Glob("testdata/fuzz/FuzzAdmissionReview/*")
	for _, file := range seeds {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		quoted, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "go test fuzz v1\n[]byte(")
		if body, err := strconv.Unquote(strings.TrimSuffix(quoted, ")")); ok && err == nil {
			f.Add([]byte(body))
		}
	}
	fast, general := bothWebhooks() // each fuzz worker runs its inputs one at a time
	f.Fuzz(func(t *testing.T, body []byte) {
		samePodWebhookAnswer(t, fast, general, body, "application/json")
	})
}
