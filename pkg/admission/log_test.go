package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	uzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestOneLogLinePerDecision checks the decision log: one JSON line per
// admission, constant message, lowerCamelCase keys with what an on-call
// admin needs, and nothing else of the pod.
func TestOneLogLinePerDecision(t *testing.T) {
	var buf bytes.Buffer
	ctx := logf.IntoContext(context.Background(), zap.New(zap.WriteTo(&buf), zap.UseDevMode(false)))
	ann := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "nginx", "secret-looking": "s3cr3t-value"}
	newHandler(&stubEnsurer{}).Handle(ctx, request("demo", admissionv1.Create, podJSON(t, ann, nil, "")))
	newHandler(&stubEnsurer{}).Handle(ctx, request("demo", admissionv1.Create, podJSON(t, map[string]string{mutate.AnnotationAudience: ""}, nil, "")))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per decision, got %d:\n%s", len(lines), buf.String())
	}
	for i, want := range []map[string]any{
		{"msg": "Admission decided", "kind": "Pod", "namespace": "demo", "name": "web-", "serviceAccount": "nginx", "audiences": "vault", "outcome": "mutated", "reason": "injected"},
		{"msg": "Admission decided", "outcome": "denied", "reason": "invalid"},
	} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, got[k], v)
			}
		}
		if _, ok := got["duration"]; !ok {
			t.Errorf("line %d has no duration", i)
		}
	}
	if strings.Contains(buf.String(), "s3cr3t-value") {
		t.Error("the log carries an annotation value the decision does not need")
	}
}

// TestRequestLoggerWritesAsTheFramework holds requestLogger to the
// framework's DefaultLogConstructor: every line, of every level, through
// WithValues and WithName, with the caller, byte for byte but the time.
func TestRequestLoggerWritesAsTheFramework(t *testing.T) {
	req := &admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "7f0b", Name: "web", Namespace: "demo", Operation: admissionv1.Create,
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		UserInfo: authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:replicaset-controller"},
	}}
	write := func(log logr.Logger) {
		log.Info("Admission decided", "outcome", "mutated", "dryRun", false, "duration", time.Millisecond)
		log.V(1).Info("Admission decided", "outcome", "skipped")
		log.Error(errors.New("boom"), "Admission failed", "reason", "ensure")
		log.WithValues("serviceAccount", "nginx").WithName("ensure").Info("Created", "kind", "Role")
		log.WithName("x").WithValues("a", 1).WithValues("b", "2").Error(nil, "nil error", "c", 3)
	}
	var lines [2]string
	for i, construct := range []func(logr.Logger, *admission.Request) logr.Logger{admission.DefaultLogConstructor, requestLogger} {
		for _, devel := range []bool{false, true} {
			var buf bytes.Buffer
			base := zap.New(zap.WriteTo(&buf), zap.UseDevMode(devel), zap.RawZapOpts(uzap.AddCaller()), zap.Level(zapcore.DebugLevel)).WithName("admission")
			write(construct(base, req))
			write(construct(base, req)) // the second of a base, as every request after the first
			lines[i] += timeless.ReplaceAllString(buf.String(), "")
		}
	}
	if lines[0] != lines[1] {
		t.Errorf("requestLogger writes\n%s\nthe framework's logger\n%s", lines[1], lines[0])
	}
	if !strings.Contains(lines[1], `"requestID":"7f0b"`) || !strings.Contains(lines[1], "log_test.go") {
		t.Errorf("the lines lack the request or the caller:\n%s", lines[1])
	}
}

// timeless cuts the time off JSON and console lines.
var timeless = regexp.MustCompile(`(?m)("ts":"[^"]*",|^\S+\t)`)

// TestLeanLogsWithRequestLogger checks that Lean gives the handler
// requestLogger's logger when the webhook has no constructor of its own.
func TestLeanLogsWithRequestLogger(t *testing.T) {
	var got logr.LogSink
	h := admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		got = logf.FromContext(ctx).GetSink()
		return admission.Allowed("")
	})
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","operation":"DELETE","namespace":"demo"}}`)
	r, _ := http.NewRequest(http.MethodPost, PodsPath, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	Lean(&admission.Webhook{Handler: h}).ServeHTTP(httptest.NewRecorder(), r)
	if _, ok := got.(*requestValues); !ok {
		t.Errorf("the handler's logger's sink is %T, want *requestValues", got)
	}
}
