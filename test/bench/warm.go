package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/token-projector/token-projector/test/bench/loadgen"
	"github.com/token-projector/token-projector/test/bench/procstat"
	"github.com/token-projector/token-projector/test/bench/scrape"
)

var (
	protocols     = []loadgen.Protocol{loadgen.HTTP1, loadgen.HTTP2} // HTTP/1.1, the default, first
	concurrencies = []int{1, 64}
)

// anonEvery is how often the webhook's anonymous memory is sampled in the
// warm run: the Go heap grows and shrinks over GC cycles of tens of
// milliseconds, and the kernel gives pages back more slowly still.
const anonEvery = 10 * time.Millisecond

// pair is the ceiling and the webhook measured in one configuration: the
// rounds pooled, and each round's measurement (ceilings[i] and webhooks[i]
// are round i's), whose ratios give the median and spread of the summary.
type pair struct {
	proto              loadgen.Protocol
	concurrency        int
	ceiling, webhook   measured
	ceilings, webhooks []measured
}

// warm measures the warm path: the ServiceAccount, Role and RoleBinding
// exist and are cached. For each protocol and concurrency, rounds of the
// ceiling and the webhook alternate (ceiling first in odd rounds, webhook
// first in even ones), so that drift of the shared machine falls on both.
func (b *bench) warm(ctx context.Context, bodies [][]byte, uids []types.UID) error {
	fmt.Println("== warm path: ServiceAccount, Role and RoleBinding exist; every answer must carry a patch ==")
	// The first admission creates the identity; then it is cached.
	prime, err := b.target("webhook", b.webhook.url, loadgen.HTTP2, bodies, uids, expectPatch)
	if err != nil {
		return err
	}
	res, err := loadgen.Run(ctx, prime, loadgen.Load{Concurrency: 1, MaxRequests: 1})
	if err != nil {
		return err
	}
	if res.Errors > 0 {
		return fmt.Errorf("priming the warm path: %v", res.ErrorSamples)
	}
	// The priming admission's Events go out after its answer.
	before, err := quiet(ctx, b.webhook)
	if err != nil {
		return err
	}
	// The webhook's own memory at its peak over the whole warm run.
	anon := procstat.WatchAnon(b.webhook.pid(), anonEvery)
	printTableHeader()
	for _, proto := range protocols {
		for _, conc := range concurrencies {
			p, err := b.warmPair(ctx, proto, conc, bodies, uids)
			if err != nil {
				return err
			}
			printPair(p)
			b.summary.warm = append(b.summary.warm, p)
		}
	}
	if b.summary.peakAnon, err = anon.Stop(); err != nil {
		return fmt.Errorf("sampling the webhook's anonymous memory: %w", err)
	}
	after, err := quiet(ctx, b.webhook)
	if err != nil {
		return err
	}
	b.summary.warmCalls = apiCalls(scrape.Delta(before, after))
	fmt.Printf("\nwarm path API calls, from the webhook's metrics over all %d warm admissions (warm-ups included): %s\n\n",
		int(b.summary.warmCalls.admissions), b.summary.warmCalls)
	return nil
}

func (b *bench) warmPair(ctx context.Context, proto loadgen.Protocol, conc int, bodies [][]byte, uids []types.UID) (pair, error) {
	p := pair{proto: proto, concurrency: conc}
	wt, err := b.target("webhook", b.webhook.url, proto, bodies, uids, expectPatch)
	if err != nil {
		return p, err
	}
	ct, err := b.target("ceiling", b.ceiling.url, proto, bodies, uids, expectNoPatch)
	if err != nil {
		return p, err
	}
	type run struct {
		s   *server
		t   loadgen.Target
		out *[]measured
	}
	var cs, ws []measured
	offset := 0
	for round := range b.c.rounds {
		order := []run{{b.ceiling, ct, &cs}, {b.webhook, wt, &ws}}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, r := range order {
			// Warm-up: connections open, caches and pools hot.
			if _, err := loadgen.Run(ctx, r.t, loadgen.Load{Concurrency: conc, Duration: b.c.warmup}); err != nil {
				return p, err
			}
			m, err := measure(ctx, r.s, r.t, loadgen.Load{Concurrency: conc, Duration: b.c.slice, Offset: offset})
			if err != nil {
				return p, err
			}
			offset += m.res.Requests
			*r.out = append(*r.out, m)
		}
	}
	p.ceiling, p.webhook, p.ceilings, p.webhooks = total(cs), total(ws), cs, ws
	return p, nil
}

// calls are the webhook's API traffic over a span, from its own metrics.
type calls struct {
	admissions  float64
	creates     float64 // token_projector_api_writes_total{result="created"}
	exists      float64 // creates that met AlreadyExists
	writeErrors float64
	liveReads   float64 // token_projector_api_reads_total
	cacheMisses float64 // token_projector_cache_misses_total
	// client-go's own count of every request to kube-apiserver, by method.
	restGet, restPost, restOther float64
}

func apiCalls(d scrape.Metrics) calls {
	const rest = "rest_client_requests_total"
	c := calls{
		admissions:  d.Sum("token_projector_admissions_total"),
		creates:     d.Sum("token_projector_api_writes_total", `result="created"`),
		exists:      d.Sum("token_projector_api_writes_total", `result="exists"`),
		writeErrors: d.Sum("token_projector_api_writes_total", `result="error"`),
		liveReads:   d.Sum("token_projector_api_reads_total"),
		cacheMisses: d.Sum("token_projector_cache_misses_total"),
		restGet:     d.Sum(rest, `method="GET"`),
		restPost:    d.Sum(rest, `method="POST"`),
	}
	c.restOther = d.Sum(rest) - c.restGet - c.restPost
	return c
}

// total is every API call the webhook made.
func (c calls) total() float64 { return c.restGet + c.restPost + c.restOther }

// ensureWrites are the creates of the Ensurer, whatever their result.
func (c calls) ensureWrites() float64 { return c.creates + c.exists + c.writeErrors }

// other are the calls that are neither the Ensurer's creates nor its live
// reads: the Events the webhook reports created objects with, and whatever
// else (watch renewals) fell in the span. A create that failed may not have
// reached the API server, so failures are not subtracted.
func (c calls) other() float64 { return max(c.total()-c.creates-c.exists-c.liveReads, 0) }

func (c calls) String() string {
	return fmt.Sprintf("%.0f API calls (client-go: %.0f GET, %.0f POST, %.0f other); token_projector: %.0f creates, %.0f AlreadyExists, %.0f write errors, %.0f live reads, %.0f cache misses",
		c.total(), c.restGet, c.restPost, c.restOther, c.creates, c.exists, c.writeErrors, c.liveReads, c.cacheMisses)
}
