package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

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
