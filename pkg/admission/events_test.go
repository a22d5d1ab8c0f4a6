package admission

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// creatingEnsurer reports the three objects of the account as created, dry
// run or not, so that only the handler can keep their Events from a dry run.
type creatingEnsurer struct{}

func (creatingEnsurer) Ensure(_ context.Context, ns, sa string, _ bool) (rbac.Result, error) {
	return rbac.Result{RBAC: true, ManagedAccount: true, Created: []rbac.Created{
		{Kind: "ServiceAccount", Object: &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}},
	}}, nil
}

// TestDryRunRecordsNoEvent: a dry-run request makes no writes at all
// (sideEffects: NoneOnDryRun), and an Event is a write: neither its denial
// nor what its ensure reports records one. The same requests for real do.
func TestDryRunRecordsNoEvent(t *testing.T) {
	bad := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h30x"}
	good := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "nginx"}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		event       string // the Event a real request records
	}{
		{name: "denial", annotations: bad, event: "Warning TokenInjectionDenied token-projector.io/expiration: \"2h30x\" is not accepted"},
		{name: "created objects", annotations: good, event: "Normal Created token-projector created ServiceAccount demo/nginx"},
	} {
		for _, dryRun := range []bool{true, false} {
			recorder := events.NewFakeRecorder(10)
			h := newHandler(creatingEnsurer{})
			h.Recorder = recorder
			req := request("demo", admissionv1.Create, podJSON(t, tc.annotations, nil, ""))
			req.DryRun = &dryRun
			h.Handle(context.Background(), req)
			close(recorder.Events)
			var got []string
			for e := range recorder.Events {
				got = append(got, e)
			}
			switch {
			case dryRun && len(got) > 0:
				t.Errorf("%s, dry run: recorded %q, want no Event", tc.name, got)
			case !dryRun && (len(got) != 1 || !strings.HasPrefix(got[0], tc.event)):
				t.Errorf("%s: recorded %q, want one Event starting %q", tc.name, got, tc.event)
			}
		}
	}
}
