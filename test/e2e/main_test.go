// Package e2e installs the Helm chart's rendering on a real kube-apiserver,
// lets the real cert-manager (its certificate controllers and CA injector,
// in-process) issue the webhook's serving certificate and inject its CA,
// and runs the webhook binary, built as the Dockerfile builds it, with the
// chart's flags and RBAC. Pods are created through the API server, which
// trusts the webhook only through the injected bundle.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

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
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	var err error
	if root, err = testenv.RepoRoot(); err != nil {
		return fail(err)
	}
	crds, err := render.CertManagerCRDs(root)
	if err != nil {
		return fail(err)
	}
	bin, err := os.MkdirTemp("", "token-projector-e2e-")
	if err != nil {
		return fail(err)
	}
	defer func() { _ = os.RemoveAll(bin) }()
	if webhookBinary, err = testenv.BuildWebhook(root, bin); err != nil {
		return fail(err)
	}
	// The chart brings the RBAC and the webhook configuration.
	env, err = testenv.Start(testenv.Options{SkipRBAC: true, SkipWebhookConfiguration: true, CRDDirectoryPaths: []string{crds}})
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping kube-apiserver:", err)
		}
	}()
	certManager.ctx, certManager.stop = context.WithCancel(context.Background())
	defer stopCertManager()
	return m.Run()
}
