package install

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestMakeTestTimesEveryPhase: make test runs every phase under
// hack/phases.sh, each under its own name, and prints the table of their
// durations at its end; the tiers that run the webhook get make test's one
// prebuilt binary, and the cluster tier, which installs releases of it,
// make test's GOFLAGS, so that its builds reuse test/release's compiles.
func TestMakeTestTimesEveryPhase(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^test:.*\n((?:\t.*\n)+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("the Makefile has no test target with a recipe")
	}
	lines := strings.Split(strings.TrimSuffix(m[1], "\n"), "\n")
	if first, last := lines[0], lines[len(lines)-1]; first != "\t@hack/phases.sh --reset" || last != "\t@hack/phases.sh --table" {
		t.Errorf("make test's recipe starts with %q and ends with %q, want hack/phases.sh --reset and --table", first, last)
	}
	var names []string
	for _, line := range lines[1 : len(lines)-1] {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "hack/phases.sh" {
			t.Errorf("make test runs %q outside hack/phases.sh: its duration would be missing from the table", line)
			continue
		}
		if slices.Contains(names, f[1]) {
			t.Errorf("two phases of make test are named %s", f[1])
		}
		names = append(names, f[1])
		if strings.Contains(line, " go test ") && !strings.Contains(line, "WEBHOOK_BINARY=$(TEST_WEBHOOK)") && !strings.Contains(line, "-race") {
			t.Errorf("make test's phase %s runs go test without its prebuilt webhook (WEBHOOK_BINARY)", f[1])
		}
	}
	for _, want := range []string{"lint", "webhook", "race", "go-test", "oldest-tiers", "cluster-tier"} {
		if !slices.Contains(names, want) {
			t.Errorf("make test has no phase %s; it has %v", want, names)
		}
	}
	if !strings.Contains(string(b), "\n\thack/phases.sh cluster-tier $(call run-cluster-tier,GOFLAGS=\"$(TEST_GOFLAGS)\")\n") {
		t.Error("make test's cluster tier runs without make test's GOFLAGS: its releases would compile the webhook's packages again")
	}
}

// TestPhasesReportsAFailingPhase: hack/phases.sh passes a phase's exit
// status on, and a failing phase is in the table, which is printed at once
// (make stops there) with the phases before it.
func TestPhasesReportsAFailingPhase(t *testing.T) {
	file := filepath.Join(t.TempDir(), "phases.tsv")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(root, "hack/phases.sh"), args...)
		cmd.Env = append(os.Environ(), "PHASES_FILE="+file)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{{"--reset"}, {"first", "true"}} {
		if out, err := run(args...); err != nil {
			t.Fatalf("hack/phases.sh %v: %v\n%s", args, err, out)
		}
	}
	out, err := run("second", "sh", "-c", "exit 3")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("a phase that exits 3 made hack/phases.sh return %v, want exit status 3", err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^first +0m0[0-9]s +ok$`),
		regexp.MustCompile(`(?m)^second +0m0[0-9]s +failed \(exit 3\)$`),
		regexp.MustCompile(`(?m)^wall clock +0m0[0-9]s$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the table printed on failure does not match %s:\n%s", want, out)
		}
	}
}

// TestLintRunsGoVet: make test has no go vet phase because golangci-lint's
// govet runs go vet's analyzers; that holds only while .golangci.yml keeps
// govet on, over the tests too.
func TestLintRunsGoVet(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, ".golangci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Run struct {
			Tests *bool `json:"tests"`
		} `json:"run"`
		Linters struct {
			Default  string   `json:"default"`
			Disable  []string `json:"disable"`
			Settings struct {
				Govet map[string]any `json:"govet"`
			} `json:"settings"`
		} `json:"linters"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if d := c.Linters.Default; d != "" && d != "standard" && d != "all" {
		t.Errorf(".golangci.yml sets linters.default %q: govet may be off, and make test runs no go vet of its own", d)
	}
	if slices.Contains(c.Linters.Disable, "govet") {
		t.Error(".golangci.yml disables govet, and make test runs no go vet of its own")
	}
	if len(c.Linters.Settings.Govet) != 0 {
		t.Errorf(".golangci.yml narrows govet (%v): make test relies on it running go vet's analyzers", c.Linters.Settings.Govet)
	}
	if c.Run.Tests != nil && !*c.Run.Tests {
		t.Error(".golangci.yml sets run.tests false: go vet also checks the tests")
	}
}
