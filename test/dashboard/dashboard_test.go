// Package dashboard checks that the Grafana dashboard shipped in the chart
// queries only metrics the webhook exports, so it cannot silently rot.
package dashboard

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fromFramework are the controller-runtime and client-go metrics the
// dashboard uses; the webhook exports them through controller-runtime.
var fromFramework = map[string]bool{
	"controller_runtime_webhook_latency_seconds_bucket": true,
	"controller_runtime_webhook_requests_in_flight":     true,
	"rest_client_requests_total":                        true,
}

func TestDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../charts/token-projector/dashboards/token-projector.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	defined := definedMetrics(t)
	metric := regexp.MustCompile(`\b((?:token_projector|controller_runtime|rest_client)_[a-z_]+)\{`)
	queried := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metric.FindAllStringSubmatch(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
			}
			for _, m := range names {
				queried++
				name := m[1]
				if !fromFramework[name] && !defined[strings.TrimSuffix(name, "_bucket")] {
					t.Errorf("panel %q queries %s, which the webhook does not export", p.Title, name)
				}
			}
		}
	}
	if queried == 0 {
		t.Fatal("the dashboard queries nothing")
	}
}

// definedMetrics are the token_projector_* names declared in pkg/.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	decl := regexp.MustCompile(`Name:\s+"(token_projector_[a-z_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir("../../pkg", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no token_projector_* metrics found in pkg/")
	}
	return names
}
