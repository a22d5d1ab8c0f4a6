// Package install tests the install surface: the Helm chart's renderings and
// schema, its agreement with config/ (kustomize), the Dockerfile's build, and
// every rendered manifest validated by a real kube-apiserver that has
// cert-manager's CRDs installed (server-side dry run).
package install

import (
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
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	var err error
	if root, err = testenv.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		return 1
	}
	crds, err := render.CertManagerCRDs(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		return 1
	}
	// Nothing of config/ is installed: each test applies what it renders.
	env, err = testenv.Start(testenv.Options{SkipRBAC: true, SkipWebhookConfiguration: true, CRDDirectoryPaths: []string{crds}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "install: stopping kube-apiserver:", err)
		}
	}()
	return m.Run()
}
