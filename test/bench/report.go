package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
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
	// peakAnon is the webhook's anonymous memory at its peak over the
	// warm run, in bytes; rounds the warm run's interleaved rounds.
	peakAnon int64
	rounds   int
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

// spread is one ratio over the interleaved rounds of a configuration: its
// median, which is what the summary judges, and its least and greatest
// values. One round's ratio is taken within the round, where the ceiling
// and the webhook ran a few seconds apart, so that the machine's drift
// between rounds falls on both.
type spread struct{ median, lo, hi float64 }

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	m := s[n/2]
	if n%2 == 0 {
		m = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{median: m, lo: s[0], hi: s[n-1]}
}

func (s spread) String() string {
	return fmt.Sprintf("%.2fx (%.2f-%.2f)", s.median, s.lo, s.hi)
}

// roundRatios are the webhook's figures over the ceiling's, round by round.
func (p pair) roundRatios(of func(m measured) float64) spread {
	var xs []float64
	for i := range min(len(p.webhooks), len(p.ceilings)) {
		if c := of(p.ceilings[i]); c > 0 {
			xs = append(xs, of(p.webhooks[i])/c)
		}
	}
	return spreadOf(xs)
}

func throughputOf(m measured) float64 { return m.res.Throughput() }
func cpuOf(m measured) float64        { return m.cpuPerThousand() }
func p99Of(m measured) float64        { return float64(m.res.Quantile(.99)) }

// The targets of the warm path (issue 22): at 64 concurrent requests, over
// either protocol, as ratios to the ceiling of the same run; and the
// webhook's own memory at its peak.
const (
	targetThroughput = 0.85 // at least
	targetCPU        = 1.2  // at most
	targetP99        = 1.3  // at most
	targetAnonMiB    = 25   // at most
)

// warmRatios are one protocol's headline figures at concurrency 64, as
// medians of the rounds' ratios to the ceiling: throughput, CPU per
// request and p99 latency.
type warmRatios struct {
	proto                loadgen.Protocol
	throughput, cpu, p99 spread
}

func (s *summary) warmRatios(proto loadgen.Protocol) (warmRatios, bool) {
	p64, ok := s.warmPair(proto, 64)
	if !ok {
		return warmRatios{}, false
	}
	return warmRatios{proto: proto, throughput: p64.roundRatios(throughputOf), cpu: p64.roundRatios(cpuOf), p99: p64.roundRatios(p99Of)}, true
}

// missed names each target the run missed, by its key in the last line.
func (s *summary) missed(h1, h2 warmRatios) []string {
	var out []string
	for _, r := range []struct {
		key string
		ok  bool
	}{
		{"warm_throughput_ratio_h1", h1.throughput.median >= targetThroughput},
		{"warm_cpu_ratio_h1", h1.cpu.median <= targetCPU},
		{"warm_p99_ratio_h1", h1.p99.median <= targetP99},
		{"warm_throughput_ratio", h2.throughput.median >= targetThroughput},
		{"warm_cpu_ratio", h2.cpu.median <= targetCPU},
		{"warm_p99_ratio", h2.p99.median <= targetP99},
		{"peak_anon_mib", s.peakAnon > 0 && mib(s.peakAnon) <= targetAnonMiB},
	} {
		if !r.ok {
			out = append(out, r.key)
		}
	}
	return out
}

// lastLine is the run's one-line verdict: the warm ratios (medians of the
// rounds; the unsuffixed keys are HTTP/2's, as before HTTP/1.1 had its
// own), the cold ratio, the peak anonymous memory, the targets and which
// were missed.
func (s *summary) lastLine(h1, h2 warmRatios, coldRatio float64) string {
	verdict := "met"
	if m := s.missed(h1, h2); len(m) > 0 {
		verdict = "missed:" + strings.Join(m, ",")
	}
	return fmt.Sprintf("bench: warm_throughput_ratio_h1=%.2f warm_cpu_ratio_h1=%.2f warm_p99_ratio_h1=%.2f warm_throughput_ratio=%.2f warm_p99_ratio=%.2f warm_cpu_ratio=%.2f cold_p50_ratio_create=%.2f peak_anon_mib=%.1f "+
		"targets: throughput>=%.2fx cpu<=%.2fx p99<=%.2fx (c=64, both protocols, medians of %d rounds) peak_anon_mib<=%d: %s",
		h1.throughput.median, h1.cpu.median, h1.p99.median, h2.throughput.median, h2.p99.median, h2.cpu.median, coldRatio, mib(s.peakAnon),
		targetThroughput, targetCPU, targetP99, s.rounds, targetAnonMiB, verdict)
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
	var peak int64
	for _, p := range s.warm {
		peak = max(peak, p.webhook.peakRSS)
	}
	fmt.Printf("== summary (warm figures: medians of %d interleaved rounds, each round's webhook over its ceiling, (least-greatest); HTTP/1.1 (the default) then HTTP/2; %s in all) ==\n",
		s.rounds, took.Round(time.Second))
	fmt.Printf("load average at end: %s", readFile("/proc/loadavg"))
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("%-44s %-22s %-16s %s\n", "measure", "value", "target", "")
	for _, r := range []warmRatios{h1, h2} {
		fmt.Printf("%-44s %-22s %-16s %s\n", fmt.Sprintf("warm throughput at concurrency 64, %s", r.proto), r.throughput, fmt.Sprintf(">= %.2fx", targetThroughput), verdict(r.throughput.median >= targetThroughput))
		fmt.Printf("%-44s %-22s %-16s %s\n", fmt.Sprintf("warm CPU per request at c=64, %s", r.proto), r.cpu, fmt.Sprintf("<= %.2fx", targetCPU), verdict(r.cpu.median <= targetCPU))
		fmt.Printf("%-44s %-22s %-16s %s\n", fmt.Sprintf("warm p99 at concurrency 64, %s", r.proto), r.p99, fmt.Sprintf("<= %.2fx", targetP99), verdict(r.p99.median <= targetP99))
	}
	fmt.Printf("%-44s %-22s %-16s %s\n", "warm peak anonymous memory (RssAnon)", fmt.Sprintf("%.1f MiB", mib(s.peakAnon)), fmt.Sprintf("<= %d MiB", targetAnonMiB), verdict(s.peakAnon > 0 && mib(s.peakAnon) <= targetAnonMiB))
	fmt.Printf("%-44s %-22s %-16s %s\n", "  warm peak RSS, binary's pages included", fmt.Sprintf("%.1f MiB", mib(peak)), "(not in target)", "")
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
	fmt.Println(s.lastLine(h1, h2, coldRatio))
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
