package admission_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tpadmission "github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/bench/fixture"
)

// httpAnswer is what a webhook answered over HTTP.
type httpAnswer struct {
	code   int
	review admissionv1.AdmissionReview
	raw    string
}

func post(t testing.TB, h http.Handler, body []byte, contentType string) httpAnswer {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, tpadmission.PodsPath, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := httpAnswer{code: w.Code, raw: w.Body.String()}
	if err := json.Unmarshal(w.Body.Bytes(), &a.review); err != nil || a.review.Response == nil {
		t.Fatalf("answer is not an AdmissionReview with a response (%v): %s", err, w.Body)
	}
	return a
}

// sameAnswer posts body to Lean(wh) and to wh itself and fails unless the
// answers agree on everything kube-apiserver reads: HTTP status, the
// review's apiVersion and kind, UID, allowed, the status (code, message,
// reason), warnings, audit annotations, the patch type, and the object the
// patch makes of the request's (patch bytes are never compared). The one
// exception: a review with no request (missing, null or empty) gets a 400
// from Lean where admission.Webhook hands the handler an empty request.
// It returns Lean's answer.
func sameAnswer(t testing.TB, wh *admission.Webhook, body []byte, contentType string) *admissionv1.AdmissionResponse {
	t.Helper()
	lean := post(t, tpadmission.Lean(wh), body, contentType)
	framework := post(t, wh, body, contentType)
	got, want := lean.review.Response, framework.review.Response
	review := unversionedReview{}
	review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	decodeErr := error(nil)
	if contentType == "application/json" {
		_, _, decodeErr = decoder.Decode(body, nil, &review)
	}
	if contentType == "application/json" && decodeErr == nil && want.Allowed && (review.Request == nil || reflect.ValueOf(*review.Request).IsZero()) {
		if lean.code != http.StatusOK || got.Allowed || got.Result == nil || got.Result.Code != http.StatusBadRequest || !strings.Contains(got.Result.Message, "no request") {
			t.Fatalf("Lean answered a review without a request %s, want a 400 naming the missing request\nbody %.300q", lean.raw, body)
		}
		return got
	}
	same := lean.code == framework.code && lean.review.TypeMeta == framework.review.TypeMeta &&
		got.UID == want.UID && got.Allowed == want.Allowed &&
		reflect.DeepEqual(got.Result, want.Result) && reflect.DeepEqual(got.Warnings, want.Warnings) &&
		reflect.DeepEqual(got.AuditAnnotations, want.AuditAnnotations) && reflect.DeepEqual(got.PatchType, want.PatchType) &&
		(len(got.Patch) == 0) == (len(want.Patch) == 0)
	if !same {
		t.Fatalf("answers differ\nLean:                HTTP %d %s\nadmission.Webhook:   HTTP %d %s\nbody %.500q", lean.code, lean.raw, framework.code, framework.raw, body)
	}
	if len(got.Patch) > 0 {
		if decodeErr != nil || review.Request == nil {
			t.Fatalf("a patch for a review that does not decode (%v): %s", decodeErr, lean.raw)
		}
		if g, w := patched(t, review.Request.Object.Raw, got.Patch), patched(t, review.Request.Object.Raw, want.Patch); !reflect.DeepEqual(g, w) {
			t.Fatalf("the patches make different objects\nLean:              %v\nadmission.Webhook: %v", g, w)
		}
	}
	return got
}

// patched is the object raw becomes under patch, decoded.
func patched(t testing.TB, raw, patch []byte) any {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decoding patch: %v: %s", err, patch)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch does not apply: %v: %s", err, patch)
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// equalityBodies are the inputs Lean is held to admission.Webhook on: the
// seed corpus of FuzzAdmissionReview as committed, every golden pod of
// pkg/mutate (its large cases too), a pod per input of pkg/mutate's FuzzParse
// corpus, the benchmarks' pod, and bodies that take the framework's decoding
// path or none.
func equalityBodies(t *testing.T) map[string][]byte {
	t.Helper()
	bodies := map[string][]byte{}
	for name, body := range tpadmission.CorpusInputs(t, "testdata/fuzz/FuzzAdmissionReview") {
		bodies["seed "+name] = body
	}
	for name, pod := range tpadmission.GoldenPods(t) {
		bodies["golden "+name] = reviewBody("v1", "uid-"+name, fuzzOptedIn, "CREATE", `{"group":"","version":"v1","kind":"Pod"}`, pod, "")
		bodies["golden deployment "+name] = reviewBody("v1", "uid-d-"+name, fuzzOptedIn, "CREATE", `{"group":"apps","version":"v1","kind":"Deployment"}`,
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":`+pod+`}}`, "")
	}
	for name, pod := range parseCorpusPods(t) {
		bodies["FuzzParse "+name] = reviewBody("v1", "uid-p-"+name, fuzzOptedIn, "CREATE", `{"group":"","version":"v1","kind":"Pod"}`, pod, "")
	}
	b, err := fixture.Body(fixture.UID("bench", 1), fuzzOptedIn, fixture.Pod(1, "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	more := map[string][]byte{
		"benchmark pod":           b,
		"v1beta1 benchmark pod":   bytes.Replace(b, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1),
		"other review kind":       bytes.Replace(b, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"Review"`), 1),
		"no apiVersion":           bytes.Replace(b, []byte(`"apiVersion":"admission.k8s.io/v1",`), nil, 1),
		"apiVersion in caps":      bytes.Replace(b, []byte(`"apiVersion":"admission.k8s.io/v1"`), []byte(`"APIVERSION":"admission.k8s.io/v1beta1"`), 1),
		"Kind after kind":         bytes.Replace(b, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"AdmissionReview","Kind":"Other"`), 1),
		"Kelvin kind":             bytes.Replace(b, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"AdmissionReview","\u212aind":"Other"`), 1),
		"escaped kind":            bytes.Replace(b, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"AdmissionReview","\u006bind":"Other"`), 1),
		"bad apiVersion":          bytes.Replace(b, []byte(`"admission.k8s.io/v1"`), []byte(`"a/b/c"`), 1),
		"yaml":                    []byte("apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest:\n  uid: y\n  operation: CREATE\n  namespace: demo\n  kind: {version: v1, kind: Pod}\n  object: {metadata: {annotations: {token-projector.io/audience: vault}}, spec: {containers: [{name: app}]}}\n"),
		"leading space":           append([]byte(" \n"), b...),
		"trailing garbage":        append(append([]byte{}, b...), []byte("x")...),
		"request null then one":   []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a"},"request":null,"request":{"uid":"b"}}`),
		"request empty":           []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`),
		"request null":            []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`),
		"object not a pod":        []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"demo","kind":{"version":"v1","kind":"Pod"},"object":{"spec":{"containers":"x"}}}}`),
		"wrong type in review":    []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}`),
		"just under the limit":    bytes.Repeat([]byte(" "), 7<<20-1),
		"at the limit":            bytes.Repeat([]byte(" "), 7<<20),
		"deep":                    append(bytes.Repeat([]byte(`{"a":`), 10001), bytes.Repeat([]byte(`}`), 10001)...),
		"workload review at pods": bodies["golden deployment classic"],
	}
	for name, body := range more {
		bodies[name] = body
	}
	return bodies
}

// parseCorpusPods are pods annotated with each input of pkg/mutate's
// FuzzParse corpus (audience, expiration, account, mount path, containers,
// the spec's account, token-file variables), all annotations present but
// the token-file variables when the input gives none. The app container
// sets VAULT_TOKEN_FILE to vault's token file, as FuzzParse's pod does.
func parseCorpusPods(t *testing.T) map[string]string {
	t.Helper()
	files, _ := filepath.Glob("../mutate/testdata/fuzz/FuzzParse/*")
	if len(files) == 0 {
		t.Fatal("no FuzzParse corpus")
	}
	out := map[string]string{}
	for _, file := range files {
		v := tpadmission.CorpusValues(t, file)
		if len(v) != 7 {
			t.Fatalf("%s: %d string values, want 7", file, len(v))
		}
		annotations := map[string]string{
			mutate.AnnotationAudience: v[0], mutate.AnnotationExpiration: v[1], mutate.AnnotationServiceAccount: v[2],
			mutate.AnnotationMountPath: v[3], mutate.AnnotationContainers: v[4],
		}
		if v[6] != "" {
			annotations[mutate.AnnotationTokenFileEnv] = v[6]
		}
		ann, err := json.Marshal(annotations)
		if err != nil {
			t.Fatal(err)
		}
		sa, _ := json.Marshal(v[5])
		out[filepath.Base(file)] = `{"metadata":{"name":"p","annotations":` + string(ann) + `},"spec":{"serviceAccountName":` + string(sa) +
			`,"containers":[{"name":"app","image":"nginx","env":[{"name":"VAULT_TOKEN_FILE","value":"/var/run/secrets/tokens/vault-token"}]},{"name":"sidecar"}]}}`
	}
	return out
}

// TestLeanAnswersAsAdmissionWebhook holds Lean to admission.Webhook around
// the same pod handler and the same workload handler, on every input of
// equalityBodies, and on the content types admission.Webhook refuses.
func TestLeanAnswersAsAdmissionWebhook(t *testing.T) {
	logf.SetLogger(logr.Discard())
	pods := fuzzWebhook(&recordingEnsurer{})
	workloads := &admission.Webhook{Handler: &tpadmission.WorkloadHandler{PodHandler: pods.Handler.(*tpadmission.PodHandler)}}
	bodies := equalityBodies(t)
	patchedOnce := 0
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			if resp := sameAnswer(t, pods, body, "application/json"); len(resp.Patch) > 0 {
				patchedOnce++
			}
			sameAnswer(t, workloads, body, "application/json")
		})
	}
	for _, contentType := range []string{"", "text/plain", "application/json; charset=utf-8", "application/yaml"} {
		t.Run("content type "+contentType, func(t *testing.T) { sameAnswer(t, pods, bodies["benchmark pod"], contentType) })
	}
	if patchedOnce < 20 {
		t.Fatalf("only %d of %d inputs were patched: the comparison covers too little", patchedOnce, len(bodies))
	}
}

// TestLeanRefusesAReviewWithoutRequest: a review that carries no request
// is malformed, and gets the 400 any other malformed review gets.
func TestLeanRefusesAReviewWithoutRequest(t *testing.T) {
	logf.SetLogger(logr.Discard())
	lean := tpadmission.Lean(fuzzWebhook(&recordingEnsurer{}))
	for _, body := range []string{
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`,
		`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`,
		"apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\n",
	} {
		a := post(t, lean, []byte(body), "application/json")
		if a.code != http.StatusOK || a.review.Response.Allowed || a.review.Response.Result.Code != http.StatusBadRequest ||
			a.review.Response.Result.Message != "the AdmissionReview has no request" {
			t.Errorf("%q: answered %s", body, a.raw)
		}
		if a.review.Kind != "AdmissionReview" || !strings.HasPrefix(a.review.APIVersion, "admission.k8s.io/") {
			t.Errorf("%q: the answer is not an AdmissionReview of the version asked: %s", body, a.raw)
		}
	}
}
