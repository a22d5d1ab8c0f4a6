package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/pkg/inject"
	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestLifetimeUnderNamespaceDefault: a namespace's default-expiration
// (2h) differs from the default a pod's volume was made under (1h). A pod
// injected offline records the lifetime it applied, so it is admitted with
// its volume as it is; a pod re-created from the webhook's own output,
// which records none, is denied with a message saying that only the
// lifetime differs, naming both lifetimes, where the pod's comes from and
// the annotation that keeps the volume's; with that annotation it is
// admitted.
func TestLifetimeUnderNamespaceDefault(t *testing.T) {
	const manifest = `apiVersion: v1
kind: Pod
metadata:
  name: app
  annotations:
    token-projector.io/audience: vault
    token-projector.io/service-account: app
spec:
  containers:
  - name: app
    image: nginx
`
	optedIn := map[string]string{mutate.LabelInject: mutate.InjectEnabled}
	handler := func(annotations map[string]string) *PodHandler {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: optedIn, Annotations: annotations}}
		return &PodHandler{Config: mutate.DefaultConfig(), Namespaces: fake.NewClientBuilder().WithObjects(ns).Build(),
			Ensurer: &stubEnsurer{}, EnsureTimeout: time.Minute}
	}
	before := handler(nil)
	after := handler(map[string]string{mutate.AnnotationDefaultExpiration: "2h"})
	// admit returns the patched pod, or the denial's code and message.
	admit := func(t *testing.T, h *PodHandler, raw []byte) ([]byte, int32, string) {
		t.Helper()
		resp := h.Handle(context.Background(), request("shop", admissionv1.Create, raw))
		if !resp.Allowed {
			return nil, resp.Result.Code, resp.Result.Message
		}
		return applyPatch(t, raw, resp.Patches), http.StatusOK, ""
	}
	// admitAsItIs admits an injected pod: its volume and the lifetime its
	// tokens get stay as they are.
	admitAsItIs := func(t *testing.T, raw []byte) {
		t.Helper()
		patched, code, msg := admit(t, after, raw)
		if code != http.StatusOK {
			t.Fatalf("refused: %d %s", code, msg)
		}
		var was, is corev1.Pod
		if err := json.Unmarshal(raw, &was); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(patched, &is); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(was.Spec.Volumes, is.Spec.Volumes); diff != "" {
			t.Fatalf("volumes changed (-was +is):\n%s", diff)
		}
	}

	t.Run("injected offline", func(t *testing.T) {
		var out bytes.Buffer
		if err := inject.Run(strings.NewReader(manifest), "pod.yaml", &out, inject.Options{Config: mutate.DefaultConfig()}); err != nil {
			t.Fatal(err)
		}
		raw, err := yaml.YAMLToJSON(out.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		admitAsItIs(t, raw)
		if !strings.Contains(out.String(), mutate.AnnotationExpiration+`: "3600"`) {
			t.Errorf("inject did not record the lifetime it applied:\n%s", out.String())
		}
	})

	t.Run("re-created from its own output", func(t *testing.T) {
		raw, err := yaml.YAMLToJSON([]byte(manifest))
		if err != nil {
			t.Fatal(err)
		}
		injected, code, msg := admit(t, before, raw)
		if code != http.StatusOK {
			t.Fatalf("first admission: %d %s", code, msg)
		}
		_, code, msg = admit(t, after, injected)
		const want = `spec.volumes[token-projector] expirationSeconds: "3600" is not accepted: 7200, the lifetime this pod asks for ` +
			`(token-projector.io/expiration not set: namespace shop's token-projector.io/default-expiration): ` +
			`the volume is the one this webhook injects but for the lifetime, as when a pod was injected offline or is re-created from its own YAML under another default; ` +
			`set token-projector.io/expiration to "3600" on the pod to keep the volume's lifetime, or remove the volume to have it injected again`
		if code != http.StatusForbidden || msg != want {
			t.Fatalf("re-created under a 2h default: %d %q, want 403 %q", code, msg, want)
		}
		kept := bytes.Replace(injected, []byte(`"token-projector.io/audience"`), []byte(`"token-projector.io/expiration":"3600","token-projector.io/audience"`), 1)
		admitAsItIs(t, kept)
	})
}
