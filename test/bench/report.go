package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/token-projector/token-projector/test/bench/cachemem"
	"github.com/token-projector/token-projector/test/bench/loadgen"
)

// summary collects what the last section and the last line report.
type summary struct {
	warm        []pair
	warmCalls   calls
	cold        []coldRun
	coldObjects [3]int
	coldWant    int
	bursts      []coldRun
	cacheSet    float64
	cacheRan    bool
	bigCluster  cachemem.Result

	// coldCreateP50 is one plain create's median latency in this run.
	coldCreateP50 time.Duration
}

func printHeader(c config) {
	fmt.Printf("token-projector benchmark, %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("machine: %s\n", machine())
	fmt.Printf("load average at start: %s", readFile("/proc/loadavg"))
	fmt.Printf("webhook: %s (built as the Dockerfile does: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'; a subprocess with the shipped RBAC's identity) %s\n",
		c.webhookBin, strings.Join(c.webhookEnv, " "))
	fmt.Println("ceiling: net/http TLS server, same certificate and TLS settings, encoding/json decode, answers allowed with the UID and no patch")
	fmt.Println("requests: AdmissionReview (CREATE pod, ~5.5 KB) of a 4.8 KB pod: 3 containers + 1 init container, env, probes, resources, 4 volumes")
	fmt.Printf("method: closed loop, TLS keep-alive; per protocol and concurrency %d interleaved rounds of %s per server after %s warm-up\n", c.rounds, c.slice, c.warmup)
	fmt.Println("        CPU = utime+stime from /proc/<pid>/stat, peak RSS = VmHWM (reset per slice); ratio = webhook / ceiling;")
	fmt.Println("        loadgen/1k = the load generator's own CPU seconds per 1000 requests (it shares the machine)")
	fmt.Println()
}

func machine() string {
	model := "unknown CPU"
	for line := range strings.SplitSeq(readFile("/proc/cpuinfo"), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			break
		}
	}
	mem := "?"
	for line := range strings.SplitSeq(readFile("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			_, _ = fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s RAM, Linux %s, %s %s/%s", model, runtime.NumCPU(), mem,
		strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func readFile(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return "?\n"
	}
	return string(b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func printTableHeader() {
	fmt.Printf("%-8s %4s  %-8s %9s %9s %9s %9s %9s %7s %10s %9s %10s\n",
		"protocol", "conc", "server", "req/s", "p50", "p90", "p99", "max", "errors", "cpu-s/1k", "peak-RSS", "loadgen/1k")
}

func printRow(proto loadgen.Protocol, conc int, name string, m measured) {
	r := m.res
	fmt.Printf("%-8s %4d  %-8s %9.0f %9s %9s %9s %9s %7d %10.3f %7.1fMiB %10.3f\n",
		proto, conc, name, r.Throughput(), ms(r.Quantile(.5)), ms(r.Quantile(.9)), ms(r.Quantile(.99)), ms(r.Max()),
		r.Errors, m.cpuPerThousand(), mib(m.peakRSS), m.loadCPUPerThousand())
}

func printPair(p pair) {
	printRow(p.proto, p.concurrency, "ceiling", p.ceiling)
	printRow(p.proto, p.concurrency, "webhook", p.webhook)
	c, w := p.ceiling, p.webhook
	q := func(f float64) time.Duration { return w.res.Quantile(f) }
	rq := func(f float64) string { return ratio(float64(q(f)), float64(c.res.Quantile(f))) }
	fmt.Printf("%-8s %4d  %-8s %9s %9s %9s %9s %9s %7s %10s %9s\n", p.proto, p.concurrency, "ratio",
		ratio(w.res.Throughput(), c.res.Throughput()), rq(.5), rq(.9), rq(.99), rq(1), "",
		ratio(w.cpuPerThousand(), c.cpuPerThousand()), ratio(float64(w.peakRSS), float64(c.peakRSS)))
	for _, e := range append(c.res.ErrorSamples, w.res.ErrorSamples...) {
		fmt.Printf("    error: %s\n", e)
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func printColdHeader() {
	fmt.Printf("%-12s %5s %6s %9s %9s %9s %9s %6s %7s %6s %5s %7s %6s %9s\n",
		"run", "adm", "req/s", "p50", "p90", "p99", "max", "errors", "creates", "exists", "reads", "events", "calls", "cpu-s/1k")
}

func printCold(r coldRun) {
	res := r.m.res
	fmt.Printf("%-12s %5d %6.0f %9s %9s %9s %9s %6d %7.0f %6.0f %5.0f %7.0f %6.0f %9.3f\n",
		r.label, res.Requests, res.Throughput(), ms(res.Quantile(.5)), ms(res.Quantile(.9)), ms(res.Quantile(.99)), ms(res.Max()),
		res.Errors, r.calls.creates, r.calls.exists, r.calls.liveReads, r.calls.other(), r.calls.total(), r.m.cpuPerThousand())
	for _, e := range res.ErrorSamples {
		fmt.Printf("    error: %s\n", e)
	}
}

// warmPair is the warm pair of proto at concurrency conc.
func (s *summary) warmPair(proto loadgen.Protocol, conc int) (pair, bool) {
	for _, p := range s.warm {
		if p.proto == proto && p.concurrency == conc {
			return p, true
		}
	}
	return pair{}, false
}

// warmRatios are one protocol's headline figures as ratios to the ceiling:
// throughput and CPU per request at concurrency 64, p99 at concurrency 1.
type warmRatios struct {
	proto                loadgen.Protocol
	throughput, cpu, p99 float64
}

func (s *summary) warmRatios(proto loadgen.Protocol) (warmRatios, bool) {
	p64, ok64 := s.warmPair(proto, 64)
	p1, ok1 := s.warmPair(proto, 1)
	if !ok64 || !ok1 {
		return warmRatios{}, false
	}
	return warmRatios{
		proto:      proto,
		throughput: p64.webhook.res.Throughput() / p64.ceiling.res.Throughput(),
		cpu:        p64.webhook.cpuPerThousand() / p64.ceiling.cpuPerThousand(),
		p99:        float64(p1.webhook.res.Quantile(.99)) / float64(p1.ceiling.res.Quantile(.99)),
	}, true
}

func (b *bench) printSummary(took time.Duration) {
	s := &b.summary
	// HTTP/1.1 first: the webhook ships with HTTP/2 off, so it is what
	// kube-apiserver speaks to a default install.
	h1, ok1 := s.warmRatios(loadgen.HTTP1)
	h2, ok2 := s.warmRatios(loadgen.HTTP2)
	if !ok1 || !ok2 {
		fmt.Println("bench: incomplete run")
		return
	}
	var peak, anon int64
	for _, p := range s.warm {
		peak = max(peak, p.webhook.peakRSS)
		anon = max(anon, p.webhook.anonRSS)
	}
	fmt.Printf("== summary (warm figures as ratios to the ceiling of this run, HTTP/1.1 (the default) then HTTP/2; %s in all) ==\n", took.Round(time.Second))
	fmt.Printf("load average at end: %s", readFile("/proc/loadavg"))
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("%-44s %-22s %-16s %s\n", "measure", "value", "target", "")
	for _, r := range []warmRatios{h1, h2} {
		fmt.Printf("%-44s %-22s %-16s %s\n", fmt.Sprintf("warm throughput at concurrency 64, %s", r.proto), fmt.Sprintf("%.2fx ceiling", r.throughput), ">= 0.60x", verdict(r.throughput >= 0.6))
		fmt.Printf("%-44s %-22s %-16s %s\n", fmt.Sprintf("warm CPU per request at c=64, %s", r.proto), fmt.Sprintf("%.2fx ceiling", r.cpu), "<= 2.00x", verdict(r.cpu <= 2))
		fmt.Printf("%-44s %-22s %-16s %s\n", fmt.Sprintf("warm p99 at concurrency 1, %s", r.proto), fmt.Sprintf("%.2fx ceiling", r.p99), "<= 2.00x", verdict(r.p99 <= 2))
	}
	fmt.Printf("%-44s %-22s %-16s %s\n", "warm peak RSS under load (all runs)", fmt.Sprintf("%.1f MiB", mib(peak)), "<= 40 MiB", verdict(mib(peak) <= 40))
	fmt.Printf("%-44s %-22s %-16s %s\n", "  of which anonymous, end of a run (max)", fmt.Sprintf("%.1f MiB", mib(anon)), "", "")
	fmt.Printf("%-44s %-22s %-16s %s\n", "warm API calls", fmt.Sprintf("%.0f in %.0f admissions", s.warmCalls.total(), s.warmCalls.admissions), "0", verdict(s.warmCalls.total() == 0))
	for _, r := range s.cold {
		n := float64(max(r.m.res.Requests, 1))
		fmt.Printf("%-44s %-22s %-16s %s\n", "cold ensure writes per admission, "+r.label,
			fmt.Sprintf("%.2f, %.2f reads", r.calls.ensureWrites()/n, r.calls.restGet/n), "3, 1 read",
			verdict(r.m.res.Errors == 0 && r.calls.creates == 3*n && r.calls.ensureWrites() == r.calls.creates && oneBindingsRead(r.calls, n)))
		fmt.Printf("%-44s %-22s %-16s %s\n", "  + Event writes per admission", fmt.Sprintf("%.2f", r.calls.other()/n), "(not in target)", "")
	}
	coldRatio := s.coldRatio()
	fmt.Printf("%-44s %-22s %-16s %s\n", "cold p50 at concurrency 1 vs one create", fmt.Sprintf("%.2fx create", coldRatio), "<= 2.50x", verdict(coldRatio > 0 && coldRatio <= 2.5))
	var writes, events []string
	burstOK := len(s.bursts) > 0
	for _, r := range s.bursts {
		writes = append(writes, fmt.Sprintf("%.0f", r.calls.ensureWrites()))
		events = append(events, fmt.Sprintf("%.0f", r.calls.other()))
		burstOK = burstOK && r.calls.ensureWrites() == 3 && r.calls.creates == 3 && oneBindingsRead(r.calls, 1) && r.m.res.Errors == 0
	}
	fmt.Printf("%-44s %-22s %-16s %s\n", "burst ensure writes per 64 admissions", strings.Join(writes, ","), "3 each", verdict(burstOK))
	fmt.Printf("%-44s %-22s %-16s %s\n", "  + Event writes per burst", strings.Join(events, ","), "(not in target)", "")
	if s.cacheRan {
		fmt.Printf("%-44s %-22s %-16s %s\n", "cache heap per SA/Role/RoleBinding set", fmt.Sprintf("%.0f B", s.cacheSet), "< 2048 B", verdict(s.cacheSet < 2048))
		big := s.bigCluster
		fmt.Printf("%-44s %-22s %-16s %s\n", fmt.Sprintf("cache heap, %dk pods (%dk inj.), %dk NS, %dk bind.",
			big.Shape.Namespaces*big.Shape.Pods/1000, big.Cached["Pod"]/1000, big.Shape.Namespaces/1000,
			(big.Cached["OtherRoleBinding"]+big.Cached["ClusterRoleBinding"])/1000),
			fmt.Sprintf("%.1f MiB (RSS %.1f)", mib(big.HeapBytes), mib(big.RSSBytes)), "(sizes the chart)", "")
	}
	// The unsuffixed keys are HTTP/2's, as before HTTP/1.1 had its own.
	fmt.Printf("bench: warm_throughput_ratio_h1=%.2f warm_cpu_ratio_h1=%.2f warm_p99_ratio_h1=%.2f warm_throughput_ratio=%.2f warm_p99_ratio=%.2f warm_cpu_ratio=%.2f cold_p50_ratio_create=%.2f\n",
		h1.throughput, h1.cpu, h1.p99, h2.throughput, h2.p99, h2.cpu, coldRatio)
}

// coldRatio is the cold path's median at concurrency 1 over one plain
// create's, both of this run; 0 if either is missing.
func (s *summary) coldRatio() float64 {
	for _, r := range s.cold {
		if r.concurrency == 1 && s.coldCreateP50 > 0 {
			return float64(r.m.res.Quantile(.5)) / float64(s.coldCreateP50)
		}
	}
	return 0
}

// oneBindingsRead reports whether the only reads were the lists of
// RoleBindings made before creating an account, one per new account.
func oneBindingsRead(c calls, accounts float64) bool {
	return c.liveReads == accounts && c.restGet == accounts
}
