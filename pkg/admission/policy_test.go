package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestNamespacePolicy: the policy annotations of the pod's namespace, read
// with its opt-in label (from the cache when it says opted in, else from the
// live read), narrow what pods and workload templates may ask for; a
// malformed one denies every triggered pod with a message naming the
// namespace, rather than fall back on the flags.
func TestNamespacePolicy(t *testing.T) {
	optedIn := map[string]string{mutate.LabelInject: mutate.InjectEnabled}
	shop := func(annotations map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: optedIn, Annotations: annotations}}
	}
	max30m := map[string]string{mutate.AnnotationMaxExpiration: "30m", mutate.AnnotationAllowedAudiences: "vault"}
	const overMax = `token-projector.io/expiration: "2h" is not accepted: whole seconds (7200) or a Go duration (2h) from 10m to 30m (namespace shop's token-projector.io/max-expiration)`
	for _, tc := range []struct {
		name       string
		cached     *corev1.Namespace // nil: the cache has not seen it
		live       *corev1.Namespace
		workload   bool
		pod        map[string]string
		code       int32
		message    string // the whole message of a denial
		expiration int64  // of an admitted pod's status
		warning    string
	}{
		{name: "over the namespace's max", cached: shop(max30m), pod: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h"},
			code: http.StatusForbidden, message: overMax},
		{name: "outside the namespace's audiences", cached: shop(max30m), pod: map[string]string{mutate.AnnotationAudience: "sts"},
			code:    http.StatusForbidden,
			message: `token-projector.io/audience: "sts" is not accepted: audiences matching vault (namespace shop's token-projector.io/allowed-audiences)`},
		{name: "default clamped to the namespace's max", cached: shop(max30m), pod: map[string]string{mutate.AnnotationAudience: "vault"},
			code: http.StatusOK, expiration: 1800,
			warning: "token-projector.io/expiration not set: tokens expire after 30m (the webhook's default, lowered to namespace shop's token-projector.io/max-expiration)"},
		{name: "namespace default", cached: shop(map[string]string{mutate.AnnotationDefaultExpiration: "20m"}), pod: map[string]string{mutate.AnnotationAudience: "vault"},
			code: http.StatusOK, expiration: 1200},
		{name: "policy from the live read", live: shop(max30m), pod: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h"},
			code: http.StatusForbidden, message: overMax},
		{name: "the cache's policy when it says opted in", cached: shop(nil), live: shop(max30m),
			pod: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h"}, code: http.StatusOK, expiration: 7200},
		{name: "workload template over the namespace's max", cached: shop(max30m), workload: true,
			pod: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h"}, code: http.StatusForbidden, message: overMax},
		{name: "malformed max denies every pod", cached: shop(map[string]string{mutate.AnnotationMaxExpiration: "1d"}),
			pod: map[string]string{mutate.AnnotationAudience: "vault"}, code: http.StatusForbidden,
			message: `namespace shop's token-projector.io/max-expiration: "1d" is not accepted: whole seconds (1800) or a Go duration (30m) of whole seconds, at least 10m; ` +
				"no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "malformed audiences deny workloads too", cached: shop(map[string]string{mutate.AnnotationAllowedAudiences: ""}), workload: true,
			pod: map[string]string{mutate.AnnotationAudience: "vault"}, code: http.StatusForbidden,
			message: `namespace shop's token-projector.io/allowed-audiences: "" is not accepted: at least one audience glob, comma-separated, such as vault,*.example.com; ` +
				"no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "an account outside the namespace's allowed accounts", cached: shop(map[string]string{mutate.AnnotationAllowedServiceAccounts: "app-*"}),
			pod: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "ci-deployer"}, code: http.StatusForbidden,
			message: `token-projector.io/service-account: "ci-deployer" is not accepted: a ServiceAccount whose name matches app-* ` +
				`(namespace shop's token-projector.io/allowed-service-accounts "app-*": the accounts the webhook may create and manage there); name one of those, or ask a cluster admin to add this one`},
		{name: "a workload's account outside the namespace's allowed accounts", cached: shop(map[string]string{mutate.AnnotationAllowedServiceAccounts: "app-*"}), workload: true,
			pod: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "ci-deployer"}, code: http.StatusForbidden},
		{name: "an account the namespace allows", cached: shop(map[string]string{mutate.AnnotationAllowedServiceAccounts: "app-*"}),
			pod: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "app-api"}, code: http.StatusOK, expiration: 3600},
		{name: "higher max warns and does not widen", cached: shop(map[string]string{mutate.AnnotationMaxExpiration: "48h"}),
			pod: map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "12h"}, code: http.StatusOK, expiration: 43200,
			warning: `namespace shop's token-projector.io/max-expiration "48h" is above the webhook's --max-expiration 24h, which applies`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache, live := fake.NewClientBuilder(), fake.NewClientBuilder()
			if tc.cached != nil {
				cache.WithObjects(tc.cached)
			}
			if tc.live != nil {
				live.WithObjects(tc.live)
			}
			h := &PodHandler{Config: mutate.DefaultConfig(), Namespaces: cache.Build(), LiveNamespaces: live.Build(), Ensurer: &stubEnsurer{}, EnsureTimeout: time.Minute}
			var resp admission.Response
			if tc.workload {
				d := appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
					ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Template: podTemplate(tc.pod, "")}}
				req := workloadRequest(t, "apps", "Deployment", admissionv1.Create, d)
				req.Namespace = "shop"
				resp = (&WorkloadHandler{PodHandler: h}).Handle(context.Background(), req)
			} else {
				resp = h.Handle(context.Background(), request("shop", admissionv1.Create, podJSON(t, tc.pod, nil, "")))
			}
			if resp.Result.Code != tc.code || (tc.message != "" && resp.Result.Message != tc.message) {
				t.Fatalf("code %d %q, want %d %q", resp.Result.Code, resp.Result.Message, tc.code, tc.message)
			}
			if tc.warning != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), tc.warning) {
				t.Errorf("warnings %q lack %q", resp.Warnings, tc.warning)
			}
			if tc.expiration != 0 {
				if got := patchedExpiration(t, resp); got != tc.expiration {
					t.Errorf("status expirationSeconds %d, want %d", got, tc.expiration)
				}
			}
		})
	}
}

// patchedExpiration reads expirationSeconds from the status annotation the
// patch adds.
func patchedExpiration(t *testing.T, resp admission.Response) int64 {
	t.Helper()
	for _, op := range resp.Patches {
		var status string
		switch {
		case op.Path == "/metadata/annotations":
			m, _ := op.Value.(map[string]any)
			status, _ = m[mutate.AnnotationStatus].(string)
		case strings.HasSuffix(op.Path, "/token-projector.io~1status"):
			status, _ = op.Value.(string)
		}
		if status != "" {
			var s struct {
				ExpirationSeconds int64 `json:"expirationSeconds"`
			}
			if err := json.Unmarshal([]byte(status), &s); err != nil {
				t.Fatal(err)
			}
			return s.ExpirationSeconds
		}
	}
	t.Fatalf("no status annotation in the patch %v", resp.Patches)
	return 0
}
