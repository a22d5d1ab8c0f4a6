// Package install tests the install surface: the Helm chart's renderings and
// schema, its agreement with config/ (kustomize), the Dockerfile's build, and
// every rendered manifest validated by a real kube-apiserver that has
// cert-manager's CRDs installed (server-side dry run).
package install

import (
	"os"
	"testing"

	"github.com/token-projector/token-projector/test/render"
	"github.com/token-projector/token-projector/test/testenv"
)

var (
	root string
	env  *testenv.Env
)

func TestMain(m *testing.M) {
	// Nothing of config/ is installed: each test applies what it renders.
	os.Exit(testenv.Suite{Name: "install", Env: &env, Prepare: render.ChartSuite(&root)}.Main(m))
}
