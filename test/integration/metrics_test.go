package integration

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// writes is the webhook's own count of objects it created, read from its
// metrics registry (the webhook runs in this process).
func writes(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "token_projector_api_writes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "created" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}
