package scrape

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestGetSumDelta(t *testing.T) {
	reg := prometheus.NewRegistry()
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "writes_total", Help: "h"}, []string{"kind", "result"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "latency_seconds", Help: "h"})
	reg.MustRegister(writes, latency)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	ctx := context.Background()
	before, err := Get(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	writes.WithLabelValues("Role", "created").Add(2)
	writes.WithLabelValues("RoleBinding", "created").Inc()
	writes.WithLabelValues("Role", "exists").Inc()
	latency.Observe(0.5)
	after, err := Get(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	d := Delta(before, after)
	for _, tc := range []struct {
		name  string
		match []string
		want  float64
	}{
		{"writes_total", nil, 4},
		{"writes_total", []string{`result="created"`}, 3},
		{"writes_total", []string{`kind="Role"`, `result="created"`}, 2},
		{"writes_total", []string{`kind="Rol"`}, 0},
		{"latency_seconds_count", nil, 1},
		{"latency_seconds_sum", nil, 0.5},
	} {
		if got := d.Sum(tc.name, tc.match...); got != tc.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tc.name, tc.match, got, tc.want)
		}
	}
	srv.Close()
	if _, err := Get(ctx, srv.URL); err == nil {
		t.Error("scraping a server that is gone succeeded")
	}
}
