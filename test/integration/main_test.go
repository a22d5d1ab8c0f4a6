// Package integration runs the webhook in-process against a real
// kube-apiserver with the ServiceAccount admission plugin enabled, its client
// bound by the shipped RBAC, and creates pods through the API server.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

var (
	env *testenv.Env
	// hook is the suite's webhook; restartWebhook replaces it for one test.
	hook *testenv.Webhook
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Suite{
		Name: "integration", LogLevel: zapLevel(), Env: &env, Hook: &hook,
		Setup: installTokenPolicy,
		// The webhook records the API server's audiences for the token
		// policy, as the chart's does.
		Webhook: func(o *server.Options) { o.TokenPolicyConfigMap = tokenPolicyName },
	}.Main(m))
}

// tokenPolicyName names config/tokenpolicy's policy, binding and ConfigMap.
const tokenPolicyName = "token-projector-token-policy"

// installTokenPolicy installs config/tokenpolicy as config/default does,
// and the webhook's own ServiceAccount, which the webhook requests a token
// for to learn the API server's audiences.
func installTokenPolicy(ctx context.Context, e *testenv.Env) error {
	if err := e.Admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: testenv.ReleaseNamespace, Name: "token-projector"}}); err != nil {
		return err
	}
	return e.ApplyFile(ctx, filepath.Join(e.Root, "config/tokenpolicy/policy.yaml"))
}

// nsCounter makes namespace names unique within a run.
var nsCounter atomic.Int64

// namespace creates a fresh namespace (opted in or not) for one test.
func namespace(t *testing.T, optedIn bool) string {
	t.Helper()
	name := fmt.Sprintf("it-%d", nsCounter.Add(1))
	var labels map[string]string
	if optedIn {
		labels = testenv.OptedIn()
	}
	if err := env.CreateNamespace(context.Background(), name, labels); err != nil {
		t.Fatal(err)
	}
	return name
}
