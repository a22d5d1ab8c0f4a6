package admission_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tpadmission "github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/test/bench/fixture"
)

// benchHandler is the pod handler on the warm path: the namespace is opted
// in (with the given policy annotations) and the ServiceAccount, Role and
// RoleBinding exist, read by the real Ensurer from a cacheReader. Its log
// lines go through the production zap encoder to io.Discard.
func benchHandler(b *testing.B, nsAnnotations map[string]string) (*tpadmission.PodHandler, context.Context) {
	b.Helper()
	const ns, sa = "bench", "checkout"
	nsMeta := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		corev1.LabelMetadataName: ns, mutate.LabelInject: mutate.InjectEnabled}, Annotations: nsAnnotations}}
	nsMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	saMeta := &metav1.PartialObjectMetadata{ObjectMeta: rbac.ServiceAccount(ns, sa).ObjectMeta}
	saMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	cache := cacheReader{}
	for _, o := range []client.Object{nsMeta, saMeta, rbac.Role(ns, sa), rbac.RoleBinding(ns, sa)} {
		cache[cacheKey(o, client.ObjectKeyFromObject(o))] = o
	}
	ensurer := &rbac.Ensurer{Cache: cache, Live: cache, Writer: fake.NewClientBuilder().Build()}
	// As pkg/server does, which adds them to its informers (here nothing
	// changes, so no event comes): the Ensurer keeps its warm answers.
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding"} {
		ensurer.CacheEventHandler(kind)
	}
	h := &tpadmission.PodHandler{
		Config:     mutate.DefaultConfig(),
		Namespaces: cache,
		Ensurer:    ensurer,
	}
	// The framework's Handle logs through logf.Log, as the webhook's main
	// sets it: the production zap logger (JSON, sampled), here to
	// io.Discard. A test run first in the same binary may have set it
	// already; the first logger set wins.
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	return h, context.Background()
}

// benchCase is one kind of warm admission: what the pod and its namespace
// ask for. Each costs only what it asks (make bench-micro's allocations per
// admission, per case).
type benchCase struct {
	name          string
	podAnnotation map[string]string // added to the fixture pod's
	nsAnnotations map[string]string
}

var benchCases = []benchCase{
	{name: "plain"},
	{name: "token-file-env", podAnnotation: map[string]string{mutate.AnnotationTokenFileEnv: "vault=VAULT_TOKEN_FILE"}},
	{name: "namespace-policy", nsAnnotations: map[string]string{
		mutate.AnnotationAllowedAudiences: "vault,*.example.com", mutate.AnnotationMaxExpiration: "12h"}},
}

// pod is the benchmark's pod for the case.
func (c benchCase) pod() *corev1.Pod {
	pod := fixture.Pod(1, "checkout")
	maps.Copy(pod.Annotations, c.podAnnotation)
	return pod
}

// runCases runs bench once per case, as sub-benchmarks named by the case.
func runCases(b *testing.B, bench func(b *testing.B, h *tpadmission.PodHandler, ctx context.Context, pod *corev1.Pod)) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			h, ctx := benchHandler(b, c.nsAnnotations)
			bench(b, h, ctx, c.pod())
		})
	}
}

// cacheReader reads as controller-runtime's informer cache does: a lookup by
// key, a deep copy of the stored object (none with UnsafeDisableDeepCopy)
// set into out, the GVK set. (Its fake
// client converts every object through the scheme, which costs many times
// more and would swamp what is measured here.)
type cacheReader map[string]client.Object

func cacheKey(obj client.Object, key client.ObjectKey) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = reflect.TypeOf(obj).Elem().Name()
	}
	return kind + " " + key.String()
}

func (c cacheReader) Get(_ context.Context, key client.ObjectKey, out client.Object, opts ...client.GetOption) error {
	src, ok := c[cacheKey(out, key)]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: cacheKey(out, key)}, key.Name)
	}
	gvk := out.GetObjectKind().GroupVersionKind()
	var o client.GetOptions
	o.ApplyOptions(opts)
	if o.UnsafeDisableDeepCopy == nil || !*o.UnsafeDisableDeepCopy {
		src = src.DeepCopyObject().(client.Object)
	}
	reflect.ValueOf(out).Elem().Set(reflect.ValueOf(src).Elem())
	out.GetObjectKind().SetGroupVersionKind(gvk)
	return nil
}

func (c cacheReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("cacheReader: List is not used on the warm path")
}

// BenchmarkHandle is one warm admission from a decoded request to the
// response with its patch: pod decode, opt-in, Mutate, Ensure (cache hits),
// patch, log line, metric.
func BenchmarkHandle(b *testing.B) {
	runCases(b, func(b *testing.B, h *tpadmission.PodHandler, ctx context.Context, pod *corev1.Pod) {
		review, err := fixture.Review(fixture.UID("bench", 1), "bench", pod)
		if err != nil {
			b.Fatal(err)
		}
		req := admission.Request{AdmissionRequest: *review.Request}
		for b.Loop() {
			resp := h.Handle(ctx, req)
			if !resp.Allowed || len(resp.Patches) == 0 {
				b.Fatalf("not patched: %+v", resp.Result)
			}
		}
	})
}

// BenchmarkServeHTTP is the handler end to end in-process, as the webhook
// server runs it (Lean around admission.Webhook and PodHandler): the
// AdmissionReview body in, the JSON answer out.
func BenchmarkServeHTTP(b *testing.B) {
	runCases(b, func(b *testing.B, h *tpadmission.PodHandler, ctx context.Context, pod *corev1.Pod) {
		benchServe(b, ctx, tpadmission.Lean(&admission.Webhook{Handler: h}), pod)
	})
}

// BenchmarkServeHTTPFramework is the same through controller-runtime's
// admission.Webhook.ServeHTTP, for comparison.
func BenchmarkServeHTTPFramework(b *testing.B) {
	runCases(b, func(b *testing.B, h *tpadmission.PodHandler, ctx context.Context, pod *corev1.Pod) {
		benchServe(b, ctx, &admission.Webhook{Handler: h}, pod)
	})
}

func benchServe(b *testing.B, ctx context.Context, wh http.Handler, pod *corev1.Pod) {
	body, err := fixture.Body(fixture.UID("bench", 1), "bench", pod)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, tpadmission.PodsPath, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		wh.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"patch":"`)) {
			b.Fatalf("HTTP %d: %.300s", w.Code, w.Body.Bytes())
		}
	}
}
