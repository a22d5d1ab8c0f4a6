package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/token-projector/token-projector/test/bench/fixture"
	"github.com/token-projector/token-projector/test/bench/loadgen"
	"github.com/token-projector/token-projector/test/bench/procstat"
	"github.com/token-projector/token-projector/test/bench/scrape"
	"github.com/token-projector/token-projector/test/testenv"
)

// The namespaces of the three paths, all opted in.
const (
	nsWarm  = "bench-warm"
	nsCold  = "bench-cold"
	nsBurst = "bench-burst"
)

// bench is one run: the control plane, the two servers and their clients.
type bench struct {
	c       config
	env     *testenv.Env
	webhook *server
	ceiling *server
	// clients by server name and protocol: each keeps its connections
	// alive across the run.
	clients map[string]*http.Client
	summary summary
}

// run runs the benchmark, prints its report and returns its summary.
func run(ctx context.Context, c config) (*summary, error) {
	b, err := runBench(ctx, c)
	if err != nil {
		return nil, err
	}
	return &b.summary, nil
}

func runBench(ctx context.Context, c config) (*bench, error) {
	// The control plane's chatter stays out of the report.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	began := time.Now()
	if err := buildBinaries(&c); err != nil {
		return nil, err
	}
	printHeader(c)

	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	for _, ns := range []string{nsWarm, nsCold, nsBurst} {
		if err := env.CreateNamespace(ctx, ns, testenv.OptedIn()); err != nil {
			return nil, err
		}
	}
	b := &bench{c: c, env: env, clients: map[string]*http.Client{}, summary: summary{rounds: c.rounds}}

	warmBodies, warmUIDs, err := bodies("warm", nsWarm, 256, func(int) string { return "warm" })
	if err != nil {
		return nil, err
	}
	if b.webhook, err = startWebhook(ctx, env, c); err != nil {
		return nil, err
	}
	defer b.webhook.stop()
	probe, err := b.target("ceiling", "", loadgen.HTTP2, warmBodies, warmUIDs, expectNoPatch)
	if err != nil {
		return nil, err
	}
	if b.ceiling, err = startCeiling(ctx, env, c, probe); err != nil {
		return nil, err
	}
	defer b.ceiling.stop()
	fmt.Printf("started in %s: control plane, webhook (pid %d), ceiling (pid %d)\n", time.Since(began).Round(time.Second), b.webhook.pid(), b.ceiling.pid())
	if err := b.printAtRest(ctx); err != nil {
		return nil, err
	}

	if err := b.warm(ctx, warmBodies, warmUIDs); err != nil {
		return nil, err
	}
	if err := b.cold(ctx); err != nil {
		return nil, err
	}
	if err := b.burst(ctx, warmBodies, warmUIDs); err != nil {
		return nil, err
	}
	if c.profile > 0 {
		if err := b.profiles(ctx, warmBodies, warmUIDs); err != nil {
			return nil, err
		}
	}
	b.webhook.stop()
	b.ceiling.stop()
	if c.scaleNamespaces > 0 {
		if err := b.scale(ctx); err != nil {
			return nil, err
		}
	}
	b.printSummary(time.Since(began))
	return b, nil
}

// printAtRest prints the servers' memory before any load: the webhook's
// with its caches synced.
func (b *bench) printAtRest(ctx context.Context) error {
	w, err := procstat.Read(b.webhook.pid())
	if err != nil {
		return err
	}
	c, err := procstat.Read(b.ceiling.pid())
	if err != nil {
		return err
	}
	m, err := scrape.Get(ctx, b.webhook.metrics)
	if err != nil {
		return err
	}
	fmt.Printf("at rest: webhook RSS %.1f MiB (anonymous %.1f MiB; Go heap in use %.1f MiB, Go runtime total %.1f MiB), ceiling RSS %.1f MiB (anonymous %.1f MiB)\n\n",
		mib(w.RSS), mib(w.AnonRSS), m.Sum("go_memstats_heap_inuse_bytes")/(1<<20), m.Sum("go_memstats_sys_bytes")/(1<<20), mib(c.RSS), mib(c.AnonRSS))
	return nil
}

// bodies are n AdmissionReviews of set in namespace, pod i naming
// serviceAccount(i), and their UIDs.
func bodies(set, namespace string, n int, serviceAccount func(int) string) ([][]byte, []types.UID, error) {
	b, err := fixture.Bodies(set, namespace, n, serviceAccount)
	if err != nil {
		return nil, nil, err
	}
	uids := make([]types.UID, n)
	for i := range uids {
		uids[i] = fixture.UID(set, i)
	}
	return b, uids, nil
}

// target is a request set for one server over one protocol, through the
// client that server keeps for that protocol.
func (b *bench) target(name, url string, proto loadgen.Protocol, bodies [][]byte, uids []types.UID,
	expect func(*loadgen.Answer) error) (loadgen.Target, error) {
	key := name + " " + string(proto)
	hc := b.clients[key]
	if hc == nil {
		var err error
		if hc, err = loadgen.NewClient(proto, b.env.WebhookInstallOptions.LocalServingCAData, 64); err != nil {
			return loadgen.Target{}, err
		}
		b.clients[key] = hc
	}
	return loadgen.Target{URL: url, Client: hc, Protocol: proto, Bodies: bodies, UIDs: uids, Expect: expect}, nil
}

func expectNoPatch(r *loadgen.Answer) error {
	if len(r.Patch) > 0 {
		return fmt.Errorf("unexpected patch %.100s", r.Patch)
	}
	return nil
}

// expectPatch wants a JSON Patch: base64 of "[{" is "W3".
func expectPatch(r *loadgen.Answer) error {
	if r.PatchType == nil || *r.PatchType != string(admissionv1.PatchTypeJSONPatch) || !strings.HasPrefix(r.Patch, "W3") {
		return fmt.Errorf("no JSON patch in the answer (patchType %v, %.20q)", r.PatchType, r.Patch)
	}
	return nil
}

// measured is one measured run of one server.
type measured struct {
	res     loadgen.Result
	cpu     time.Duration
	peakRSS int64
	// loadCPU is the load generator's own CPU time over the run: it shares
	// the machine with the server.
	loadCPU time.Duration
	// metrics changed by the run (the webhook only).
	metrics scrape.Metrics
}

// measure runs l against s through t, reading s's CPU time and peak RSS
// from /proc around the run and, for the webhook, its metrics: after the
// run, once the webhook's API traffic has gone quiet, so that what it sends
// after answering (Events) counts in the run that caused it.
func measure(ctx context.Context, s *server, t loadgen.Target, l loadgen.Load) (measured, error) {
	var m measured
	var before scrape.Metrics
	var err error
	if s.metrics != "" {
		if before, err = scrape.Get(ctx, s.metrics); err != nil {
			return m, err
		}
	}
	_ = procstat.ResetPeak(s.pid()) // best effort: without it the peak is the process's
	p0, err := procstat.Read(s.pid())
	if err != nil {
		return m, err
	}
	self0, err := procstat.Read(os.Getpid())
	if err != nil {
		return m, err
	}
	if m.res, err = loadgen.Run(ctx, t, l); err != nil {
		return m, err
	}
	p1, err := procstat.Read(s.pid())
	if err != nil {
		return m, err
	}
	self1, err := procstat.Read(os.Getpid())
	if err != nil {
		return m, err
	}
	m.cpu, m.peakRSS, m.loadCPU = p1.CPU-p0.CPU, p1.PeakRSS, self1.CPU-self0.CPU
	if s.metrics != "" {
		after, err := quiet(ctx, s)
		if err != nil {
			return m, err
		}
		m.metrics = scrape.Delta(before, after)
	}
	return m, ctx.Err()
}

// quietFor is how long the webhook must make no API request for its
// traffic to count as over (the smoke test shortens it).
var quietFor = 1500 * time.Millisecond

// quiet waits until the webhook has made no API request for quietFor (at
// most 15 s) and returns its metrics then.
func quiet(ctx context.Context, s *server) (scrape.Metrics, error) {
	const poll, limit = 100 * time.Millisecond, 15 * time.Second
	still := quietFor
	last, err := scrape.Get(ctx, s.metrics)
	if err != nil {
		return nil, err
	}
	since, deadline := time.Now(), time.Now().Add(limit)
	for time.Since(since) < still && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
		m, err := scrape.Get(ctx, s.metrics)
		if err != nil {
			return nil, err
		}
		if m.Sum("rest_client_requests_total") != last.Sum("rest_client_requests_total") {
			since = time.Now()
		}
		last = m
	}
	return last, nil
}

// total pools measured runs of one configuration.
func total(ms []measured) measured {
	var t measured
	rs := make([]loadgen.Result, 0, len(ms))
	t.metrics = scrape.Metrics{}
	for _, m := range ms {
		rs = append(rs, m.res)
		t.cpu += m.cpu
		t.loadCPU += m.loadCPU
		t.peakRSS = max(t.peakRSS, m.peakRSS)
		for k, v := range m.metrics {
			t.metrics[k] += v
		}
	}
	t.res = loadgen.Merge(rs...)
	return t
}

// cpuPerThousand is server CPU seconds per 1000 admissions.
func (m measured) cpuPerThousand() float64 { return perThousand(m.cpu, m.res.Requests) }

// loadCPUPerThousand is the load generator's CPU seconds per 1000 requests.
func (m measured) loadCPUPerThousand() float64 { return perThousand(m.loadCPU, m.res.Requests) }

func perThousand(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return d.Seconds() / float64(n) * 1000
}
