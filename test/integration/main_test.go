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
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/token-projector/token-projector/test/testenv"
)

var (
	env *testenv.Env
	// hook is the suite's webhook; restartWebhook replaces it for one test.
	hook *testenv.Webhook
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	var err error
	if env, err = testenv.Start(testenv.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	opts, err := env.ServerOptions()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	hook, err = testenv.StartWebhook(context.Background(), opts, time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer func() {
		if hook == nil {
			return
		}
		if err := hook.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "integration: stopping the webhook:", err)
		}
	}()
	return m.Run()
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
