package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// stubEnsurer records calls and returns a fixed error; the real Ensurer is
// exercised against a real API server in test/integration.
type stubEnsurer struct {
	err error
	// foreign reports every account as an existing one that is neither
	// the webhook's nor labelled by its owner.
	foreign bool

	mu    sync.Mutex // admissions may run concurrently
	calls []string
}

func (s *stubEnsurer) Ensure(_ context.Context, ns, sa string, dryRun bool) (rbac.Result, error) {
	s.mu.Lock()
	s.calls = append(s.calls, ns+"/"+sa)
	s.mu.Unlock()
	if s.err != nil {
		return rbac.Result{}, s.err
	}
	return s.result(), nil
}

// result is what the stub reports ensured: by default, an account the
// webhook created (the status Mutate assumes).
func (s *stubEnsurer) result() rbac.Result {
	if s.foreign {
		return rbac.Result{}
	}
	return rbac.Result{RBAC: true, ManagedAccount: true}
}

func newHandler(ens Ensurer) *PodHandler {
	optedIn := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}
	return &PodHandler{
		Config:     mutate.DefaultConfig(),
		Namespaces: fake.NewClientBuilder().WithObjects(optedIn, other).Build(),
		Ensurer:    ens,
	}
}

func request(namespace string, op admissionv1.Operation, raw []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid-1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: namespace,
		Operation: op,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func podJSON(t *testing.T, annotations, labels map[string]string, namespace string) []byte {
	t.Helper()
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: namespace, Annotations: annotations, Labels: labels},
		Spec:       corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withTokenFileEnv is annotations asking for VAULT_TOKEN_FILE too.
func withTokenFileEnv(annotations map[string]string) map[string]string {
	out := map[string]string{mutate.AnnotationTokenFileEnv: "vault=VAULT_TOKEN_FILE"}
	for k, v := range annotations {
		out[k] = v
	}
	return out
}

// envPodJSON is podJSON's pod with env in its container.
func envPodJSON(t *testing.T, annotations map[string]string, env ...corev1.EnvVar) []byte {
	t.Helper()
	var pod corev1.Pod
	if err := json.Unmarshal(podJSON(t, annotations, nil, ""), &pod); err != nil {
		t.Fatal(err)
	}
	pod.Spec.Containers[0].Env = env
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResponses(t *testing.T) {
	classic := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h", mutate.AnnotationServiceAccount: "nginx"}
	for _, tc := range []struct {
		name        string
		req         admission.Request
		ensureErr   error
		foreign     bool // the account exists and is neither ours nor labelled
		allowed     bool
		code        int32
		patched     bool
		message     string // substring of the result message
		warning     string // substring of some warning
		wantEnsured bool
	}{
		{name: "mutated", req: request("demo", admissionv1.Create, podJSON(t, classic, nil, "")),
			allowed: true, code: http.StatusOK, patched: true, wantEnsured: true},
		{name: "foreign account: volume, no RBAC, warning", req: request("demo", admissionv1.Create, podJSON(t, classic, nil, "")), foreign: true,
			allowed: true, code: http.StatusOK, patched: true, wantEnsured: true,
			warning: "ServiceAccount demo/nginx exists and is not labelled token-projector.io/inject=enabled: no token RBAC ensured"},
		{name: "defaults warn", req: request("demo", admissionv1.Create, podJSON(t, map[string]string{mutate.AnnotationAudience: "vault"}, nil, "")),
			allowed: true, code: http.StatusOK, patched: true, warning: "no Role or RoleBinding is ensured"},
		{name: "malformed object", req: request("demo", admissionv1.Create, []byte(`{"metadata":`)),
			code: http.StatusBadRequest, message: "decoding the pod"},
		{name: "no namespace in request", req: request("", admissionv1.Create, podJSON(t, classic, nil, "")),
			code: http.StatusBadRequest, message: "names no namespace"},
		{name: "invalid annotation", req: request("demo", admissionv1.Create, podJSON(t, map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h30x"}, nil, "")),
			code: http.StatusForbidden, message: `token-projector.io/expiration: "2h30x" is not accepted`},
		{name: "ensure fails", req: request("demo", admissionv1.Create, podJSON(t, classic, nil, "")), ensureErr: errors.New("connection refused"),
			code: http.StatusInternalServerError, message: "connection refused", wantEnsured: true},
		{name: "rbac conflict", req: request("demo", admissionv1.Create, podJSON(t, classic, nil, "")),
			ensureErr: &rbac.ConflictError{Kind: "Role", Namespace: "demo", Name: "nginx-create-token", Reason: "is not managed by token-projector"},
			code:      http.StatusForbidden, message: "Role demo/nginx-create-token already exists", wantEnsured: true},
		{name: "account that bindings not ours name", req: request("demo", admissionv1.Create, podJSON(t, classic, nil, "")),
			ensureErr: &rbac.BoundError{Namespace: "demo", ServiceAccount: "nginx", Bindings: []string{"ClusterRoleBinding deployers (grants ClusterRole cluster-admin)"}},
			code:      http.StatusForbidden, message: "ServiceAccount demo/nginx does not exist and ClusterRoleBinding deployers (grants ClusterRole cluster-admin), which token-projector did not write",
			wantEnsured: true},
		{name: "namespace mismatch", req: request("demo", admissionv1.Create, podJSON(t, classic, nil, "other")),
			code: http.StatusForbidden, message: `metadata.namespace "other" differs`},
		{name: "namespace not opted in", req: request("other", admissionv1.Create, podJSON(t, classic, nil, "")),
			allowed: true, code: http.StatusOK},
		{name: "namespace unknown", req: request("nowhere", admissionv1.Create, podJSON(t, classic, nil, "")),
			allowed: true, code: http.StatusOK},
		{name: "no audience", req: request("demo", admissionv1.Create, podJSON(t, map[string]string{"x": "y"}, nil, "")),
			allowed: true, code: http.StatusOK},
		{name: "pod opted out", req: request("demo", admissionv1.Create, podJSON(t, classic, map[string]string{mutate.LabelInject: mutate.InjectDisabled}, "")),
			allowed: true, code: http.StatusOK},
		{name: "update ignored", req: request("demo", admissionv1.Update, podJSON(t, classic, nil, "")),
			allowed: true, code: http.StatusOK},
		{name: "token-file variable", req: request("demo", admissionv1.Create, podJSON(t, withTokenFileEnv(classic), nil, "")),
			allowed: true, code: http.StatusOK, patched: true, wantEnsured: true},
		{name: "token-file variable the container sets otherwise", req: request("demo", admissionv1.Create, envPodJSON(t, withTokenFileEnv(classic), corev1.EnvVar{Name: "VAULT_TOKEN_FILE", Value: "/x"})),
			code: http.StatusForbidden, message: `token-projector.io/token-file-env: "vault=VAULT_TOKEN_FILE" is not accepted: container "app" already sets VAULT_TOKEN_FILE to "/x" ` +
				`(this annotation would set it to "/var/run/secrets/tokens/vault-token"); remove it from the container or name another variable`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ens := &stubEnsurer{err: tc.ensureErr, foreign: tc.foreign}
			resp := newHandler(ens).Handle(context.Background(), tc.req)
			if err := resp.Complete(tc.req); err != nil {
				t.Fatal(err)
			}
			if resp.Allowed != tc.allowed || resp.Result.Code != tc.code {
				t.Fatalf("allowed=%v code=%d (%s), want allowed=%v code=%d", resp.Allowed, resp.Result.Code, resp.Result.Message, tc.allowed, tc.code)
			}
			if tc.patched != (len(resp.Patches) > 0) {
				t.Errorf("patches = %v, want patched=%v", resp.Patches, tc.patched)
			}
			if !strings.Contains(resp.Result.Message, tc.message) {
				t.Errorf("message %q does not contain %q", resp.Result.Message, tc.message)
			}
			if tc.warning != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), tc.warning) {
				t.Errorf("warnings %q do not contain %q", resp.Warnings, tc.warning)
			}
			if tc.wantEnsured != (len(ens.calls) > 0) {
				t.Errorf("ensure calls %v, want ensured=%v", ens.calls, tc.wantEnsured)
			}
			// The status annotation records what was really ensured.
			if patches, _ := json.Marshal(resp.Patches); tc.patched && !strings.Contains(string(patches), fmt.Sprintf(`\"rbac\":%v`, tc.wantEnsured && !tc.foreign)) {
				t.Errorf("status does not record rbac=%v: %s", tc.wantEnsured && !tc.foreign, patches)
			}
			if tc.wantEnsured && ens.calls[0] != "demo/nginx" {
				t.Errorf("ensured %v, want demo/nginx from request.namespace", ens.calls)
			}
		})
	}
}

// TestPatchEqualsTypedMutation applies the handler's JSON Patch to the raw pod
// of every admitted golden case of pkg/mutate, with fields our k8s.io/api
// does not know added at several depths, and checks that the result is the
// typed mutation, that the unknown fields survive, and that a second pass over
// the result patches nothing.
func TestPatchEqualsTypedMutation(t *testing.T) {
	outs, _ := filepath.Glob("../mutate/testdata/*/out.yaml")
	if len(outs) == 0 {
		t.Fatal("no golden cases found")
	}
	for _, out := range outs {
		dir := filepath.Dir(out)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw := rawWithUnknownFields(t, filepath.Join(dir, "in.yaml"))
			var typed corev1.Pod
			if err := json.Unmarshal(raw, &typed); err != nil {
				t.Fatal(err)
			}
			want := typed.DeepCopy()
			res, err := mutate.Mutate(want, mutate.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			res.Changes.Apply(want)

			patched := admitAndPatch(t, raw)
			var got corev1.Pod
			if err := json.Unmarshal(patched, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, &got); diff != "" {
				t.Errorf("patched raw pod differs from the typed mutation (-typed +patched):\n%s", diff)
			}
			for _, p := range []string{"futureTopLevel", "metadata.futureMeta", "spec.futureSpec", "spec.containers.0.futureContainer"} {
				if !hasPath(t, patched, p) {
					t.Errorf("unknown field %s was lost", p)
				}
			}
			if again := admitAndPatch(t, patched); !jsonEqual(t, again, patched) {
				t.Errorf("a second pass changed the pod")
			}
		})
	}
}

func rawWithUnknownFields(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["futureTopLevel"] = map[string]any{"x": 1.0}
	m["metadata"].(map[string]any)["futureMeta"] = "kept"
	spec := m["spec"].(map[string]any)
	spec["futureSpec"] = []any{"a", "b"}
	spec["containers"].([]any)[0].(map[string]any)["futureContainer"] = true
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func admitAndPatch(t *testing.T, raw []byte) []byte {
	t.Helper()
	req := request("demo", admissionv1.Create, raw)
	resp := newHandler(&stubEnsurer{}).Handle(context.Background(), req)
	if !resp.Allowed {
		t.Fatalf("denied: %s", resp.Result.Message)
	}
	for _, op := range resp.Patches {
		if op.Operation != "add" {
			t.Fatalf("non-add operation %v", op)
		}
	}
	return applyPatch(t, raw, resp.Patches)
}
