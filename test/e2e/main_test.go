// Package e2e installs the Helm chart's rendering on a real kube-apiserver,
// lets the real cert-manager (its certificate controllers and CA injector,
// in-process) issue the webhook's serving certificate and inject its CA,
// and runs the webhook binary, built as the Dockerfile builds it, with the
// chart's flags and RBAC. Pods are created through the API server, which
// trusts the webhook only through the injected bundle.
package e2e

import (
	"context"
	"os"
	"testing"

	"github.com/token-projector/token-projector/test/render"
	"github.com/token-projector/token-projector/test/testenv"
)

var (
	root string
	env  *testenv.Env
	// webhookBinary is cmd/webhook built like the image's.
	webhookBinary string
)

func TestMain(m *testing.M) {
	var bin string
	os.Exit(testenv.Suite{
		Name: "e2e", Env: &env,
		// The chart brings the RBAC and the webhook configuration.
		Prepare: func(o *testenv.Options) error {
			if err := render.ChartSuite(&root)(o); err != nil {
				return err
			}
			var err error
			if bin, err = os.MkdirTemp("", "token-projector-e2e-"); err != nil {
				return err
			}
			webhookBinary, err = testenv.WebhookBinary(root, bin)
			return err
		},
		Setup: func(context.Context, *testenv.Env) error {
			certManager.ctx, certManager.stop = context.WithCancel(context.Background())
			return nil
		},
		Teardown: func() {
			if certManager.stop != nil {
				stopCertManager()
			}
			if bin != "" {
				_ = os.RemoveAll(bin)
			}
		},
	}.Main(m))
}
