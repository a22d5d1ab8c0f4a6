// Package reconcile runs the webhook with garbage collection on (a TTL of a
// few seconds) against a real kube-apiserver, its client bound by the
// shipped ClusterRoles token-projector, token-projector-namespaces and
// token-projector-gc, and shows what the reconciler restores, what it
// collects and what it never touches.
package reconcile

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

// ttl is the webhook's --gc-ttl here: short, so that collection is seen
// within a test, and long enough for a test to act before it. grace is its
// --gc-grace, between the RoleBinding's delete and the rest.
const (
	ttl   = 3 * time.Second
	grace = 2 * time.Second
)

var (
	env  *testenv.Env
	hook *testenv.Webhook
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Suite{
		Name: "reconcile", LogLevel: zapcore.ErrorLevel, Env: &env, Hook: &hook,
		Setup:   BindGC,
		Webhook: func(o *server.Options) { o.GCTTL, o.GCGrace = ttl, grace },
	}.Main(m))
}

// stopWebhook stops the webhook; startWebhook starts it again with its
// options, as a rollout does: its caches and reconciler start from nothing.
func stopWebhook(t *testing.T) {
	t.Helper()
	if err := hook.Stop(); err != nil {
		t.Fatal(err)
	}
}

func startWebhook(t *testing.T) {
	t.Helper()
	var err error
	if hook, err = testenv.StartWebhook(context.Background(), hook.Options, time.Minute); err != nil {
		hook = nil
		t.Fatal(err)
	}
}

// BindGC binds the shipped token-projector-gc ClusterRole to the webhook's
// user cluster-wide, as an install with garbage collection on does.
func BindGC(ctx context.Context, env *testenv.Env) error {
	return env.Admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "token-projector-gc"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "token-projector-gc"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "token-projector", Namespace: testenv.ReleaseNamespace}},
	})
}

var nsCounter atomic.Int64

func namespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("rc-%d", nsCounter.Add(1))
	if err := env.CreateNamespace(context.Background(), name, testenv.OptedIn()); err != nil {
		t.Fatal(err)
	}
	return name
}

func pod(ns, name, sa string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{mutate.AnnotationAudience: "vault"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
	if sa != "" {
		p.Annotations[mutate.AnnotationServiceAccount] = sa
	}
	return p
}
