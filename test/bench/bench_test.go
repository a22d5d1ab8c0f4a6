//go:build benchsmoke

// TestBenchSmoke takes a control plane and a build of the webhook binary
// as the Dockerfile builds it, about 400 s of make test on a cold machine:
// it runs with make bench (-tags benchsmoke), before the benchmark itself,
// while go test ./test/bench/... keeps the fast tests of the harness
// (statistics, the last line, port clashes, /proc sampling, the load
// generator against the ceiling, the cache measurement on a small cluster).

package main

import (
	"context"
	"testing"
	"time"
)

// TestBenchSmoke runs make bench's whole machinery in a few seconds, so
// that it cannot rot: the webhook binary built as the Dockerfile builds it
// and the ceiling against a real control plane, both protocols and both
// concurrencies, the cold and burst paths, and the API calls read from the
// webhook's metrics. It asserts what must hold whatever the machine (no
// errors; no API call warm; 3 creates per new ServiceAccount, 3 per burst),
// never a timing. Profiles and the cache measurement are left out (the
// latter has its own test).
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the webhook and starts a control plane")
	}
	quietFor = 300 * time.Millisecond
	c := config{outDir: t.TempDir(), rounds: 2, slice: 300 * time.Millisecond, warmup: 100 * time.Millisecond, coldRequests: 3, bursts: 1}
	s, err := run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.warm) != len(protocols)*len(concurrencies) {
		t.Fatalf("%d warm configurations measured", len(s.warm))
	}
	if s.peakAnon <= 0 {
		t.Errorf("no peak anonymous memory sampled: %d", s.peakAnon)
	}
	for _, p := range s.warm {
		if len(p.ceilings) != c.rounds || len(p.webhooks) != c.rounds {
			t.Errorf("%s c=%d: %d and %d rounds measured, want %d each", p.proto, p.concurrency, len(p.ceilings), len(p.webhooks), c.rounds)
		}
		for name, m := range map[string]measured{"ceiling": p.ceiling, "webhook": p.webhook} {
			if m.res.Errors != 0 || len(m.res.Latencies) == 0 || m.peakRSS <= 0 {
				t.Errorf("%s %s c=%d: %d requests, %d errors %v, peak RSS %d", name, p.proto, p.concurrency,
					m.res.Requests, m.res.Errors, m.res.ErrorSamples, m.peakRSS)
			}
		}
	}
	if s.warmCalls.admissions == 0 || s.warmCalls.total() != 0 {
		t.Errorf("warm path: %s over %.0f admissions, want none", s.warmCalls, s.warmCalls.admissions)
	}
	for _, r := range s.cold {
		n := float64(r.m.res.Requests)
		if r.m.res.Errors != 0 || n == 0 || r.calls.creates != 3*n || !oneBindingsRead(r.calls, n) {
			t.Errorf("cold %s: %v admissions, %d errors %v, %s", r.label, n, r.m.res.Errors, r.m.res.ErrorSamples, r.calls)
		}
	}
	if s.coldCreateP50 <= 0 || s.coldRatio() <= 0 {
		t.Errorf("cold path: no ratio to a plain create (p50 %s)", s.coldCreateP50)
	}
	if s.coldObjects != [3]int{s.coldWant, s.coldWant, s.coldWant} {
		t.Errorf("cold objects in kube-apiserver: %v, want %d each", s.coldObjects, s.coldWant)
	}
	if len(s.bursts) != len(protocols) {
		t.Fatalf("%d bursts", len(s.bursts))
	}
	for _, r := range s.bursts {
		if r.m.res.Errors != 0 || r.m.res.Requests != 64 || r.calls.ensureWrites() != 3 || r.calls.creates != 3 {
			t.Errorf("burst %s: %d admissions, %d errors %v, %s", r.label, r.m.res.Requests, r.m.res.Errors, r.m.res.ErrorSamples, r.calls)
		}
	}
}
