// Package scrape reads a process's Prometheus metrics, so that the benchmark
// counts the webhook's API calls from the webhook's own account of them.
package scrape

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the counter and gauge values of one scrape, by series:
// name{label="value",...} with labels sorted by name. A histogram gives
// name_count and name_sum.
type Metrics map[string]float64

// Get scrapes url.
func Get(ctx context.Context, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	m := Metrics{}
	for name, f := range families {
		for _, s := range f.GetMetric() {
			key := name + labels(s.GetLabel())
			switch {
			case s.Counter != nil:
				m[key] = s.GetCounter().GetValue()
			case s.Gauge != nil:
				m[key] = s.GetGauge().GetValue()
			case s.Untyped != nil:
				m[key] = s.GetUntyped().GetValue()
			case s.Histogram != nil:
				ls := labels(s.GetLabel())
				m[name+"_count"+ls] = float64(s.GetHistogram().GetSampleCount())
				m[name+"_sum"+ls] = s.GetHistogram().GetSampleSum()
			}
		}
	}
	return m, nil
}

func labels(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// Sum adds the series of metric name whose labels include every pair of
// match (name="value" strings).
func (m Metrics) Sum(name string, match ...string) float64 {
	total := 0.0
	for key, v := range m {
		series, ls, _ := strings.Cut(key, "{")
		if series != name {
			continue
		}
		ok := true
		for _, want := range match {
			if !strings.Contains("{"+ls, "{"+want) && !strings.Contains(ls, ","+want) {
				ok = false
				break
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// Delta is after minus before, series by series.
func Delta(before, after Metrics) Metrics {
	d := Metrics{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}
