package install

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestClaimedVersionsAreTested: the Kubernetes versions the chart accepts
// and docs/install.md and CHANGELOG.md claim run from the oldest to the newest kube-apiserver
// make test runs the tiers against (the modules pinned in hack/controlplane),
// so that no claim outlives the tests that back it.
func TestClaimedVersionsAreTested(t *testing.T) {
	oldest, newest := pinnedMinor(t, "kube-apiserver-oldest"), pinnedMinor(t, "kube-apiserver")
	if oldest == newest {
		t.Fatalf("the oldest and the newest pinned kube-apiserver are both %s", oldest)
	}

	b, err := os.ReadFile(filepath.Join(root, "charts/token-projector/Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		KubeVersion string `json:"kubeVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	if want := ">=" + oldest + ".0-0"; chart.KubeVersion != want {
		t.Errorf("Chart.yaml kubeVersion %q, want %q: the oldest kube-apiserver make test runs against is %s", chart.KubeVersion, want, oldest)
	}

	doc, err := os.ReadFile(filepath.Join(root, "docs/install.md"))
	if err != nil {
		t.Fatal(err)
	}
	if claim := "Kubernetes " + oldest + " to " + newest; !strings.Contains(string(doc), claim) {
		t.Errorf("docs/install.md does not claim %q, the range make test runs against", claim)
	}

	// The newest entry that says what it was tested on (the [Unreleased]
	// one, or the release just cut) says the range tested now.
	changelog, err := os.ReadFile(filepath.Join(root, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	var tested string
	for _, entry := range strings.Split(string(changelog), "\n## [")[1:] {
		if strings.Contains(entry, "Tested on Kubernetes ") {
			tested = entry
			break
		}
	}
	if claim := "Tested on Kubernetes " + oldest + " to " + newest; !strings.Contains(tested, claim) {
		t.Errorf("CHANGELOG.md's newest entry with a \"Tested on\" line does not say %q, the range make test runs against", claim)
	}

	oldestTiersRun(t)
}

// oldestTiersRun checks that make test runs the integration and end-to-end
// tiers against the oldest kube-apiserver for real: go test would otherwise
// serve that run the cached results of the same packages run against the
// newest one a moment before, since it cannot see the suites' read of
// KUBEBUILDER_ASSETS (in TestMain, before the reads it records begin).
func oldestTiersRun(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	makefile := string(b)
	recipe := regexp.MustCompile(`(?m)^\t.*hack/controlplane\.sh --oldest\).* go test (.*)\$\(OLDEST_TIERS\)$`).FindStringSubmatch(makefile)
	if recipe == nil {
		t.Fatal("the Makefile has no recipe line running go test on $(OLDEST_TIERS) with KUBEBUILDER_ASSETS from hack/controlplane.sh --oldest")
	}
	if !slices.Contains(strings.Fields(recipe[1]), "-count=1") {
		t.Errorf("the oldest tiers run with go test flags %q, without -count=1: go test serves them the newest kube-apiserver's cached results", recipe[1])
	}
	tiers := regexp.MustCompile(`(?m)^OLDEST_TIERS \?= (.*)$`).FindStringSubmatch(makefile)
	if tiers == nil {
		t.Fatal("the Makefile sets no OLDEST_TIERS")
	}
	for _, want := range []string{"./test/integration", "./test/e2e"} {
		if !slices.Contains(strings.Fields(tiers[1]), want) {
			t.Errorf("OLDEST_TIERS is %q, without %s, which docs/install.md says runs against the oldest kube-apiserver", tiers[1], want)
		}
	}
}

// pinnedMinor is the major.minor of the k8s.io/kubernetes that one of
// hack/controlplane's modules requires.
func pinnedMinor(t *testing.T, module string) string {
	t.Helper()
	file := filepath.Join(root, "hack/controlplane", module, "go.mod")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^require k8s\.io/kubernetes v(1\.[0-9]+)\.[0-9]+$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no line `require k8s.io/kubernetes v1.x.y`", file)
	}
	return string(m[1])
}
