package integration

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/pkg/inject"
	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// TestLifetimeAfterNamespaceDefault: through the API server, a pod admitted
// under the webhook's default (1h) is re-created from its own output once
// its namespace sets default-expiration 2h: it is denied with a message
// that says only the lifetime differs, naming both and the annotation that
// keeps the volume's, and with that annotation it is admitted as it is. A
// pod injected offline under the same flags records the lifetime it got and
// is admitted there as it is.
func TestLifetimeAfterNamespaceDefault(t *testing.T) {
	ctx := context.Background()
	ns := policyNamespace(t, nil)
	first, err := createPod(ns, "vault", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := status(t, first).ExpirationSeconds; got != 3600 {
		t.Fatalf("first pod: expirationSeconds %d, want the webhook's default 3600", got)
	}
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"2h"}}}`, mutate.AnnotationDefaultExpiration))
	if err := env.Admin.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, patch); err != nil {
		t.Fatal(err)
	}
	// Re-created from its own output, as `kubectl get -o yaml` gives it.
	again := func(annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "again-", Annotations: annotations}, Spec: *first.Spec.DeepCopy()}
	}
	want := `spec.volumes[token-projector] expirationSeconds: "3600" is not accepted: 7200, the lifetime this pod asks for ` +
		`(token-projector.io/expiration not set: namespace ` + ns + `'s token-projector.io/default-expiration): ` +
		`the volume is the one this webhook injects but for the lifetime`
	// Polled: the webhook's namespace cache may lag the patch a moment, and
	// until then the pod is admitted under the old default.
	var last error
	testenv.WaitFor(t, "the re-created pod denied naming both lifetimes", 10*time.Second, func() bool {
		last = env.Admin.Create(ctx, again(first.Annotations))
		return last != nil && strings.Contains(last.Error(), want)
	})
	if !strings.Contains(last.Error(), `set token-projector.io/expiration to "3600" on the pod`) {
		t.Errorf("the denial does not name the annotation that keeps the volume's lifetime: %v", last)
	}
	kept := map[string]string{mutate.AnnotationExpiration: "3600"}
	for k, v := range first.Annotations {
		kept[k] = v
	}
	p := again(kept)
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatalf("re-created with %s set to the volume's lifetime: %v", mutate.AnnotationExpiration, err)
	}
	if !testenv.MutatedOnce(p) || status(t, p).ExpirationSeconds != 3600 {
		t.Errorf("re-created with the annotation: mutated once %v, expirationSeconds %d, want its volume as it was", testenv.MutatedOnce(p), status(t, p).ExpirationSeconds)
	}

	// Injected offline under the webhook's flags, created in the namespace.
	manifest := pod(ns, "offline", map[string]string{mutate.AnnotationAudience: "vault"})
	manifest.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	src, err := yaml.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := inject.Run(bytes.NewReader(src), "pod.yaml", &out, inject.Options{Config: mutate.DefaultConfig()}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "name: "+mutate.VolumeName) {
		t.Fatalf("inject left the pod as it was:\n%s", out.String())
	}
	var offline corev1.Pod
	if err := yaml.UnmarshalStrict(out.Bytes(), &offline); err != nil {
		t.Fatal(err)
	}
	if err := env.Admin.Create(ctx, &offline); err != nil {
		t.Fatalf("a pod injected offline was refused where the namespace's default differs: %v", err)
	}
	if !testenv.MutatedOnce(&offline) || status(t, &offline).ExpirationSeconds != 3600 {
		t.Errorf("offline pod: mutated once %v, expirationSeconds %d, want its volume as injected", testenv.MutatedOnce(&offline), status(t, &offline).ExpirationSeconds)
	}
}
