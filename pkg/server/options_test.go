package server

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// TestLeaderElectionIDReachesTheManager: --leader-election-id names the
// manager's Lease (the chart passes one per release), and without it the
// Lease is the one config/ and earlier releases use.
func TestLeaderElectionIDReachesTheManager(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--leader-elect"}, "token-projector-reconciler"},
		{[]string{"--leader-elect", "--leader-election-id=team-a-token-projector-reconciler"}, "team-a-token-projector-reconciler"},
	} {
		o := DefaultOptions()
		fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.BindFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got := managerOptions(o, nil, nil)
		if !got.LeaderElection || got.LeaderElectionID != tc.want {
			t.Errorf("%v: manager's leader election %v through the Lease %q, want on through %q", tc.args, got.LeaderElection, got.LeaderElectionID, tc.want)
		}
	}
}

// TestMetricsAnswerUncompressed: the metrics endpoint answers a scraper
// that accepts gzip uncompressed (see managerOptions).
func TestMetricsAnswerUncompressed(t *testing.T) {
	opts := promhttp.HandlerOpts{}
	for _, set := range managerOptions(DefaultOptions(), nil, nil).Metrics.HandlerOpts {
		set(&opts)
	}
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	w := httptest.NewRecorder()
	promhttp.HandlerFor(metrics.Registry, opts).ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "" || w.Body.Len() == 0 {
		t.Errorf("HTTP %d, Content-Encoding %q, %d bytes; want 200, uncompressed", w.Code, w.Header().Get("Content-Encoding"), w.Body.Len())
	}
}
