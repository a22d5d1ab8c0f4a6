package admission

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// TestEnsurePanicIsThisAdmissionsError: a panic inside the Ensurer's shared
// ensure (here, in the create of the pod's new account) fails that
// admission with the webhook's own 500, and the handler goes on serving.
func TestEnsurePanicIsThisAdmissionsError(t *testing.T) {
	api := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*corev1.ServiceAccount); ok && obj.GetName() == "nginx" {
				panic("boom")
			}
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	h := newHandler(&rbac.Ensurer{Cache: api, Live: api, Writer: api, Timeout: 10 * time.Second})
	h.EnsureTimeout = 10 * time.Second
	resp := h.Handle(context.Background(), request("demo", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
	if resp.Allowed || resp.Result.Code != http.StatusInternalServerError || !strings.Contains(resp.Result.Message, "internal error (panic: boom)") {
		t.Fatalf("admission whose ensure panicked: allowed=%v code=%d %q, want a 500 naming the panic", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	resp = h.Handle(context.Background(), request("demo", admissionv1.Create, podJSON(t, map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "web"}, nil, "")))
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Errorf("the next admission, for another account: allowed=%v code=%d %q, want mutated", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
}
