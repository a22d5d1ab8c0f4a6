// Package integration runs the webhook in-process against a real
// kube-apiserver with the ServiceAccount admission plugin enabled, its client
// bound by the shipped RBAC, and creates pods through the API server.
package integration

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

var (
	env *testenv.Env
	// hook is the suite's webhook; restartWebhook replaces it for one test.
	hook *testenv.Webhook
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Suite{Name: "integration", LogLevel: zapLevel(), Webhook: func(*server.Options) {}, Env: &env, Hook: &hook}.Main(m))
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
