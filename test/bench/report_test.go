package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/token-projector/token-projector/test/bench/loadgen"
)

// TestSpreadOf: the median of an odd count is its middle value, of an even
// count the mean of the two middle ones, whatever the order given.
func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{1.5}, spread{1.5, 1.5, 1.5}},
		{[]float64{3, 1, 2}, spread{2, 1, 3}},
		{[]float64{1.4, 0.9, 1.2, 1.0}, spread{1.1, 0.9, 1.4}},
		{[]float64{9, 1, 1, 1, 1}, spread{1, 1, 9}}, // one disturbed round does not move it
	} {
		got := spreadOf(tc.xs)
		if !near(got.median, tc.want.median) || got.lo != tc.want.lo || got.hi != tc.want.hi {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.xs, got, tc.want)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// slice is a measured slice of n requests of latency lat over one second and
// cpu of server CPU.
func slice(n int, lat, cpu time.Duration) measured {
	res := loadgen.Result{Requests: n, Elapsed: time.Second}
	for range n {
		res.Latencies = append(res.Latencies, lat)
	}
	return measured{res: res, cpu: cpu}
}

// TestRoundRatios: each round's ratio is its webhook over its own ceiling,
// not over another round's; the median judges.
func TestRoundRatios(t *testing.T) {
	p := pair{
		ceilings: []measured{slice(1000, 10*time.Millisecond, 200*time.Millisecond), slice(500, 20*time.Millisecond, 100*time.Millisecond), slice(1000, 10*time.Millisecond, 200*time.Millisecond)},
		webhooks: []measured{slice(900, 12*time.Millisecond, 216*time.Millisecond), slice(400, 30*time.Millisecond, 96*time.Millisecond), slice(800, 11*time.Millisecond, 240*time.Millisecond)},
	}
	// Throughput 0.9, 0.8, 0.8; CPU per request 1.2, 1.2, 1.5; p99 1.2, 1.5, 1.1.
	for name, tc := range map[string]struct {
		of   func(measured) float64
		want spread
	}{
		"throughput": {throughputOf, spread{0.8, 0.8, 0.9}},
		"cpu":        {cpuOf, spread{1.2, 1.2, 1.5}},
		"p99":        {p99Of, spread{1.2, 1.1, 1.5}},
	} {
		got := p.roundRatios(tc.of)
		if !near(got.median, tc.want.median) || !near(got.lo, tc.want.lo) || !near(got.hi, tc.want.hi) {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
	}
}

// TestLastLine: the last line carries every key (the earlier ones
// unchanged), the peak anonymous memory and the targets, and names each
// target missed; a run that meets all says so.
func TestLastLine(t *testing.T) {
	good := spread{median: 1}
	h1 := warmRatios{proto: loadgen.HTTP1, throughput: spread{median: 0.9}, cpu: spread{median: 1.1}, p99: spread{median: 1.25}}
	h2 := warmRatios{proto: loadgen.HTTP2, throughput: spread{median: 0.8}, cpu: good, p99: spread{median: 1.4}}
	s := &summary{peakAnon: 30 << 20, rounds: 5}
	line := s.lastLine(h1, h2, 2)
	for _, want := range []string{
		"bench: warm_throughput_ratio_h1=0.90 warm_cpu_ratio_h1=1.10 warm_p99_ratio_h1=1.25 warm_throughput_ratio=0.80 warm_p99_ratio=1.40 warm_cpu_ratio=1.00 cold_p50_ratio_create=2.00 peak_anon_mib=30.0 ",
		"throughput>=0.85x cpu<=1.20x p99<=1.30x", "medians of 5 rounds", "peak_anon_mib<=25",
		": missed:warm_throughput_ratio,warm_p99_ratio,peak_anon_mib",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("last line\n%s\nlacks %q", line, want)
		}
	}
	s.peakAnon = 20 << 20
	h2.throughput, h2.p99 = spread{median: 0.85}, spread{median: 1.3}
	if line := s.lastLine(h1, h2, 2); !strings.HasSuffix(line, ": met") {
		t.Errorf("a run meeting every target: %s", line)
	}
	s.peakAnon = 0 // not measured: not met
	if line := s.lastLine(h1, h2, 2); !strings.HasSuffix(line, ": missed:peak_anon_mib") {
		t.Errorf("a run without its memory figure: %s", line)
	}
}

// TestWithFreePorts: a server that could not bind a port it was given is
// started again (on fresh ports, which start probes), a bounded number of
// times; any other failure is returned at once.
func TestWithFreePorts(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "server.log")
	clashes := func(n int) (func() (*server, error), *int) {
		calls := 0
		return func() (*server, error) {
			calls++
			if calls <= n {
				if err := os.WriteFile(logFile, []byte("listen tcp 127.0.0.1:40001: bind: address already in use\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return nil, errors.New("exited")
			}
			return &server{name: "ok"}, nil
		}, &calls
	}
	start, calls := clashes(2)
	if s, err := withFreePorts("x", logFile, start); err != nil || s == nil || *calls != 3 {
		t.Errorf("two clashes: %v, %v after %d starts, want a server after 3", s, err, *calls)
	}
	start, calls = clashes(startAttempts)
	if _, err := withFreePorts("x", logFile, start); err == nil || *calls != startAttempts {
		t.Errorf("clashing every time: %v after %d starts, want an error after %d", err, *calls, startAttempts)
	}
	other := 0
	if err := os.WriteFile(logFile, []byte("no kubeconfig\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := withFreePorts("x", logFile, func() (*server, error) { other++; return nil, errors.New("exited") }); err == nil || other != 1 {
		t.Errorf("another failure: %v after %d starts, want an error after 1", err, other)
	}
}
