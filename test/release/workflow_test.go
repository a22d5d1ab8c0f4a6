package release

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/token-projector/token-projector/test/testenv"
)

// TestWorkflowsLint runs actionlint, built from its module pinned in
// hack/actionlint, on the hosted-CI workflows (.github/workflows), which
// cannot run here: syntax, expressions, permissions, runner labels.
func TestWorkflowsLint(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "actionlint")
	build := exec.Command("go", "build", "-o", bin, "github.com/rhysd/actionlint/cmd/actionlint")
	build.Dir = filepath.Join(root, "hack", "actionlint")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building actionlint: %v\n%s", err, out)
	}
	lint := exec.Command(bin, "-no-color")
	lint.Dir = root
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("actionlint: %v\n%s", err, out)
	}
}
