package release

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/token-projector/token-projector/internal/release"
)

// checkChart: helm templates the chart straight from the registry, at the
// release's version, and it runs the image by the index's digest.
func checkChart(t *testing.T, helm, ref string, res *release.Result) {
	out, err := exec.CommandContext(context.Background(), helm, "template", "token-projector", ref,
		"--version", res.ChartVersion, "--plain-http", "--namespace", "token-projector-system").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template %s --version %s: %v\n%s", ref, res.ChartVersion, err, out)
	}
	want := "image: " + res.Index.String()
	if !strings.Contains(string(out), want) && !strings.Contains(string(out), `image: "`+res.Index.String()+`"`) {
		t.Errorf("the chart does not run %s", res.Index)
	}
	show, err := exec.Command(helm, "show", "chart", ref, "--version", res.ChartVersion, "--plain-http").CombinedOutput()
	if err != nil {
		t.Fatalf("helm show chart: %v\n%s", err, show)
	}
	for _, line := range []string{"version: " + res.ChartVersion, "appVersion: " + res.ChartVersion} {
		if !strings.Contains(string(show), line+"\n") {
			t.Errorf("Chart.yaml lacks %q:\n%s", line, show)
		}
	}
}
