package admission

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// lateReader answers a live read just before the read's deadline: the
// slowest read that still succeeds. The object is read first, so that only
// a channel's wake-up stands between the answer and the deadline (reading
// it in the last 20 ms missed the deadline under -race on a busy machine).
type lateReader struct{ client.Reader }

func (r lateReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		return fmt.Errorf("the live read has no deadline")
	}
	if err := r.Reader.Get(ctx, key, obj); err != nil {
		return err
	}
	select {
	case <-time.After(time.Until(deadline) - 50*time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stuckEnsurer never finishes: it answers when its caller's deadline ends,
// as the real one does for a caller that stops waiting.
type stuckEnsurer struct{}

func (stuckEnsurer) Ensure(ctx context.Context, _, _ string, _ bool) (rbac.Result, error) {
	<-ctx.Done()
	return rbac.Result{}, fmt.Errorf("stopped waiting, still creating Role: %w", context.Cause(ctx))
}

// TestOneDeadlinePerAdmission: the live namespace read and the ensure share
// one deadline, --ensure-timeout from the start of the admission, so that
// the webhook answers within it however slow both are (the chart keeps it
// below kube-apiserver's timeoutSeconds). With the slowest read that still
// succeeds and an ensure that never does, the answer is a 500 naming the
// ensure and the timeout, within EnsureTimeout; the old code gave the ensure
// a fresh EnsureTimeout after the read's third, 4/3 of it in all.
func TestOneDeadlinePerAdmission(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	labelled := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	h := &PodHandler{
		Config:         mutate.DefaultConfig(),
		Namespaces:     fake.NewClientBuilder().Build(),
		LiveNamespaces: lateReader{fake.NewClientBuilder().WithObjects(labelled).Build()},
		Ensurer:        stuckEnsurer{},
		EnsureTimeout:  timeout,
	}
	start := time.Now()
	resp := h.Handle(context.Background(), request("fresh", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
	took := time.Since(start)
	if resp.Result.Code != http.StatusInternalServerError || !strings.Contains(resp.Result.Message, "ensuring ServiceAccount fresh/nginx and its token RBAC did not finish within --ensure-timeout (1.5s") {
		t.Errorf("answer: code %d %q, want a 500 naming the ensure and --ensure-timeout", resp.Result.Code, resp.Result.Message)
	}
	// A generous margin for scheduling; the old code took a third more.
	if limit := timeout + timeout/6; took > limit {
		t.Errorf("answered after %s, want within --ensure-timeout %s (+%s margin)", took, timeout, limit-timeout)
	}
}

// stuckReader never answers a live read before its deadline.
type stuckReader struct{ client.Reader }

func (stuckReader) Get(ctx context.Context, _ client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestLiveReadTakesAThird: a live read that never answers fails the
// admission with a 500 naming the read and its share of the deadline, once
// its third of --ensure-timeout is over, without waiting for the rest.
func TestLiveReadTakesAThird(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	h := &PodHandler{
		Config:         mutate.DefaultConfig(),
		Namespaces:     fake.NewClientBuilder().Build(),
		LiveNamespaces: stuckReader{},
		Ensurer:        &stubEnsurer{},
		EnsureTimeout:  timeout,
	}
	start := time.Now()
	resp := h.Handle(context.Background(), request("fresh", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
	took := time.Since(start)
	want := "namespace fresh is not labelled token-projector.io/inject=enabled in the webhook's cache, and reading it from the API server to confirm failed: " +
		"no answer within 500ms (a third of --ensure-timeout)"
	if resp.Result.Code != http.StatusInternalServerError || !strings.Contains(resp.Result.Message, want) {
		t.Errorf("answer: code %d %q, want a 500 containing %q", resp.Result.Code, resp.Result.Message, want)
	}
	if limit := timeout / 2; took > limit {
		t.Errorf("answered after %s, want soon after the read's third (%s) of --ensure-timeout, within %s", took, timeout/3, limit)
	}
}
