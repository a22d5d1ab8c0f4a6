package cluster

import (
	"os"
	"strings"
	"testing"
)

// TestMissingNamesWhatIsMissing: a machine without the binaries (or not
// root) is told exactly what it lacks, so that the tier fails with a
// message instead of half-starting a cluster.
func TestMissingNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	missing := strings.Join(Missing(dir), "\n")
	for _, b := range binaries {
		if !strings.Contains(missing, b+" in \""+dir+"\" (run hack/cluster.sh)") {
			t.Errorf("Missing does not name %s; it says:\n%s", b, missing)
		}
	}
	if os.Geteuid() != 0 && !strings.Contains(missing, "root") {
		t.Errorf("not root, and Missing does not say so:\n%s", missing)
	}
}
