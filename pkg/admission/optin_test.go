package admission

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestLiveNamespaceRead: a "not opted in" from the cache (a miss, or a
// namespace cached before its label) is confirmed with a read from the API
// server; what it says decides, a failed read is our own 500, and a cache
// that says "opted in" is trusted without a read.
func TestLiveNamespaceRead(t *testing.T) {
	classic := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "nginx"}
	labelled := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	unlabelled := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}}
	for _, tc := range []struct {
		name      string
		cached    []client.Object // what the webhook's cache holds
		live      []client.Object // what the API server holds
		liveErr   error
		code      int32
		patched   bool
		message   string
		liveReads int
		result    string // the metric's result label
	}{
		{name: "cache miss, labelled live", live: []client.Object{labelled},
			code: http.StatusOK, patched: true, liveReads: 1, result: liveOptedIn},
		{name: "cached before its label, labelled live", cached: []client.Object{unlabelled}, live: []client.Object{labelled},
			code: http.StatusOK, patched: true, liveReads: 1, result: liveOptedIn},
		{name: "not labelled live", cached: []client.Object{unlabelled}, live: []client.Object{unlabelled},
			code: http.StatusOK, message: "is not labelled", liveReads: 1, result: liveNotOptedIn},
		{name: "unknown live",
			code: http.StatusOK, message: "is not labelled", liveReads: 1, result: liveNotFound},
		{name: "live read fails", liveErr: errors.New("connection refused"),
			code: http.StatusInternalServerError, message: "reading it from the API server to confirm failed: connection refused", liveReads: 1, result: liveError},
		{name: "cache says opted in", cached: []client.Object{labelled}, liveErr: errors.New("must not be read"),
			code: http.StatusOK, patched: true, liveReads: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads := 0
			live := fake.NewClientBuilder().WithObjects(tc.live...).WithInterceptorFuncs(interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					reads++
					if _, ok := ctx.Deadline(); !ok {
						t.Error("the live read has no deadline")
					}
					if tc.liveErr != nil {
						return tc.liveErr
					}
					return c.Get(ctx, key, obj, opts...)
				},
			}).Build()
			ens := &stubEnsurer{}
			h := &PodHandler{
				Config:         mutate.DefaultConfig(),
				Namespaces:     fake.NewClientBuilder().WithObjects(tc.cached...).Build(),
				LiveNamespaces: live,
				EnsureTimeout:  3 * time.Minute,
				Ensurer:        ens,
			}
			before := 0.0
			if tc.result != "" {
				before = testutil.ToFloat64(liveReads.WithLabelValues(tc.result))
			}
			req := request("fresh", admissionv1.Create, podJSON(t, classic, nil, ""))
			resp := h.Handle(context.Background(), req)
			if resp.Result.Code != tc.code || tc.patched != (len(resp.Patches) > 0) {
				t.Fatalf("code %d patched %v (%s), want code %d patched %v", resp.Result.Code, len(resp.Patches) > 0, resp.Result.Message, tc.code, tc.patched)
			}
			if !strings.Contains(resp.Result.Message, tc.message) {
				t.Errorf("message %q does not contain %q", resp.Result.Message, tc.message)
			}
			if reads != tc.liveReads {
				t.Errorf("%d live reads, want %d", reads, tc.liveReads)
			}
			if tc.patched != (len(ens.calls) > 0) {
				t.Errorf("ensure calls %v, want some only when injected", ens.calls)
			}
			if tc.result != "" {
				if got := testutil.ToFloat64(liveReads.WithLabelValues(tc.result)) - before; got != 1 {
					t.Errorf("%s live reads counted %v times, want 1", tc.result, got)
				}
			}
		})
	}
}
