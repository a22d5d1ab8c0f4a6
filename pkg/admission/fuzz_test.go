package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/token-projector/token-projector/internal/podvalidation"
	tpadmission "github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// The namespaces the fuzzed webhook knows: only fuzzOptedIn carries the
// opt-in label. A review may claim any namespace; the webhook must read
// opt-in from its own cache and write nowhere else.
const (
	fuzzOptedIn  = "demo"
	fuzzNotOpted = "other"
)

// recordingEnsurer records every ensure and creates nothing.
type recordingEnsurer struct {
	mu    sync.Mutex
	calls []ensureCall
}

type ensureCall struct {
	namespace, serviceAccount string
	dryRun                    bool
}

func (r *recordingEnsurer) Ensure(_ context.Context, namespace, serviceAccount string, dryRun bool) (rbac.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, ensureCall{namespace, serviceAccount, dryRun})
	return rbac.Result{RBAC: true, ManagedAccount: true}, nil
}

func (r *recordingEnsurer) taken() []ensureCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// decoder decodes reviews as controller-runtime's webhook does: v1 and
// v1beta1 into the v1 type, through an unregistered wrapper.
var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	if err := admissionv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := admissionv1beta1.AddToScheme(s); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(s).UniversalDeserializer()
}()

type unversionedReview struct {
	admissionv1.AdmissionReview
}

// fuzzWebhook is controller-runtime's admission.Webhook around a handler
// with a fake namespace cache and ens; panics are not recovered, so that
// they fail the test.
func fuzzWebhook(ens tpadmission.Ensurer) *admission.Webhook {
	optedIn := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fuzzOptedIn, Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fuzzNotOpted}}
	recoverPanic := false // a panic must fail the fuzz test, not become a 500
	return &admission.Webhook{
		Handler: &tpadmission.PodHandler{
			Config:     mutate.DefaultConfig(),
			Namespaces: fake.NewClientBuilder().WithObjects(optedIn, other).Build(),
			Ensurer:    ens,
		},
		RecoverPanic: &recoverPanic,
	}
}

// FuzzAdmissionReview posts arbitrary bytes to the pod webhook's HTTP handler
// as kube-apiserver (or anyone on the pod network) would. Properties:
//   - no panic, and never a 500 (the Ensurer and cache here cannot fail, so
//     a 500 is a recovered panic or bad input mistaken for our own failure);
//   - a review that decodes gets its request UID echoed;
//   - the patch is add-only, applies cleanly (with the JSON Patch library
//     kube-apiserver uses) to the object as sent, and the result passes
//     kube-apiserver's volume and mount validation if the input did;
//   - admitting the patched object again patches nothing: once equals twice;
//   - ensures happen only for an opted-in namespace that is the request's
//     namespace, for a valid account name, and never for anything but a pod
//     CREATE.
//
// Seeds: testdata/fuzz/FuzzAdmissionReview.
func FuzzAdmissionReview(f *testing.F) {
	logf.SetLogger(logr.Discard())
	// Built once: each fuzz worker runs its inputs one at a time. The pod
	// webhook as pkg/server registers it: its own review decoding, handing
	// what it does not take to admission.Webhook. A panic in its path comes
	// back as a 500, which fails the test too.
	ens := &recordingEnsurer{}
	wh := fuzzWebhook(ens)
	f.Fuzz(func(t *testing.T, body []byte) {
		ens.taken()
		resp := serve(t, wh, body)

		review := unversionedReview{}
		review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
		if _, _, err := decoder.Decode(body, nil, &review); err != nil {
			if resp.Allowed || len(resp.Patch) > 0 || len(ens.taken()) > 0 || resp.Result.Code != http.StatusBadRequest {
				t.Fatalf("undecodable review (%v) was not refused as a bad request: %+v", err, resp)
			}
			return
		}
		if review.Request == nil {
			review.Request = &admissionv1.AdmissionRequest{}
		}
		req := review.Request
		if resp.UID != req.UID {
			t.Fatalf("response UID %q does not echo request UID %q", resp.UID, req.UID)
		}
		if resp.Result != nil && resp.Result.Code >= 500 {
			t.Fatalf("bad input answered %d: %s", resp.Result.Code, resp.Result.Message)
		}
		if !resp.Allowed && (resp.Result == nil || strings.TrimSpace(resp.Result.Message) == "") {
			t.Fatalf("refusal without a message: %+v", resp)
		}
		podCreate := req.Operation == admissionv1.Create && req.Kind.Group == "" && req.Kind.Kind == "Pod" && req.SubResource == ""
		checkEnsures(t, req, ens.taken(), podCreate)

		if len(resp.Patch) == 0 {
			return
		}
		if !podCreate || !resp.Allowed {
			t.Fatalf("patch for a request that is not an admitted pod CREATE: %+v", req)
		}
		patched := applyAddOnly(t, req.Object.Raw, resp.Patch)
		checkPodValidity(t, req.Object.Raw, patched)

		// Once equals twice: the webhook on its own output changes nothing.
		again := *req
		again.UID = req.UID + "-again"
		again.Object = runtime.RawExtension{Raw: patched}
		body2, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: &again,
		})
		if err != nil {
			t.Fatal(err)
		}
		resp2 := serve(t, wh, body2)
		if !resp2.Allowed || len(resp2.Patch) > 0 {
			t.Fatalf("second pass: allowed=%v patch=%s result=%+v", resp2.Allowed, resp2.Patch, resp2.Result)
		}
		checkEnsures(t, &again, ens.taken(), true)
	})
}

// serve posts body to the webhook and decodes its answer, which must always
// be a 200 carrying an AdmissionReview response.
func serve(t *testing.T, wh http.Handler, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, tpadmission.PodsPath, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	wh.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("answer is not an AdmissionReview with a response (%v): %s", err, w.Body)
	}
	return out.Response
}

func checkEnsures(t *testing.T, req *admissionv1.AdmissionRequest, calls []ensureCall, podCreate bool) {
	t.Helper()
	if len(calls) > 0 && !podCreate {
		t.Fatalf("ensured %+v for a request that is not a pod CREATE", calls)
	}
	for _, c := range calls {
		switch {
		case c.namespace != req.Namespace:
			t.Fatalf("ensured in %q for a request in %q", c.namespace, req.Namespace)
		case c.namespace != fuzzOptedIn:
			t.Fatalf("ensured in %q, which is not opted in", c.namespace)
		case c.serviceAccount == mutate.DefaultServiceAccount || len(validation.IsDNS1123Subdomain(c.serviceAccount+mutate.RBACNameSuffix)) > 0:
			t.Fatalf("ensured account %q", c.serviceAccount)
		case c.dryRun != (req.DryRun != nil && *req.DryRun):
			t.Fatalf("ensure dryRun=%v for a request with dryRun=%v", c.dryRun, req.DryRun)
		}
	}
}

// applyAddOnly applies a JSON Patch made of "add" operations only, with the
// library kube-apiserver's mutating webhook dispatcher uses.
func applyAddOnly(t *testing.T, raw, patch []byte) []byte {
	t.Helper()
	var ops []struct {
		Op string `json:"op"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatalf("patch is not JSON Patch: %v: %s", err, patch)
	}
	for _, op := range ops {
		if op.Op != "add" {
			t.Fatalf("non-add operation %q in %s", op.Op, patch)
		}
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decoding patch: %v: %s", err, patch)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch does not apply to the object as sent: %v\npatch: %s\nobject: %s", err, patch, raw)
	}
	return out
}

// checkPodValidity decodes the object before and after the patch as
// kube-apiserver does (case-sensitive JSON) and holds the result to
// kube-apiserver's volume and mount validation when the input passed it.
func checkPodValidity(t *testing.T, before, after []byte) {
	t.Helper()
	var in, out corev1.Pod
	inErr := sigsjson.UnmarshalCaseSensitivePreserveInts(before, &in)
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(after, &out); err != nil {
		if inErr == nil {
			t.Fatalf("patched object no longer decodes as a pod: %v\n%s", err, after)
		}
		return
	}
	if inErr != nil || len(podvalidation.Validate(&in)) > 0 {
		return
	}
	if errs := podvalidation.Validate(&out); len(errs) > 0 {
		t.Fatalf("kube-apiserver would reject the patched pod:\n%s\nbefore: %s\nafter:  %s", strings.Join(errs, "\n"), before, after)
	}
	if got := slices.IndexFunc(out.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == mutate.VolumeName }); got < 0 {
		t.Fatalf("patched pod has no %s volume: %s", mutate.VolumeName, after)
	}
}
