package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

// namespaceReadLimited is the message of a review refused by the namespace
// read limit.
const namespaceReadLimited = "the webhook's namespace read rate limit (--namespace-read-qps, --namespace-read-burst) was reached"

// TestForgedReviewsAreRateLimited: reviews sent straight to the webhook
// port, bypassing kube-apiserver, for namespaces that do not exist each cost
// a live namespace read. With a tiny --namespace-read-qps/-burst the webhook makes
// at most burst (+ qps x elapsed) reads; every review over that budget gets
// the webhook's own 500 naming the rate limit, none a skip without its read.
func TestForgedReviewsAreRateLimited(t *testing.T) {
	const qps, burst, forged = 0.5, 3, 15
	restartWebhook(t, func(o *server.Options) { o.NamespaceReadQPS, o.NamespaceReadBurst = qps, burst })
	reads := func() float64 { return testenv.Counter(t, "token_projector_namespace_live_reads_total", nil) }
	refused := func() float64 {
		return testenv.Counter(t, "token_projector_namespace_reads_throttled_total", map[string]string{"result": "refused"})
	}
	readsBefore, refusedBefore := reads(), refused()
	start := time.Now()
	skipped, limited := 0, 0
	for i := range forged {
		ns := fmt.Sprintf("forged-nowhere-%d", nsCounter.Add(1))
		resp := review(t, podReview(t, fmt.Sprint("flood-", i), ns, pod(ns, "forged", classic("forged"))))
		switch {
		case resp.Allowed && len(resp.Patch) == 0:
			skipped++
		case !resp.Allowed && resp.Result.Code == http.StatusInternalServerError && strings.Contains(resp.Result.Message, namespaceReadLimited):
			limited++
		default:
			t.Errorf("review %d: allowed=%v result=%+v", i, resp.Allowed, resp.Result)
		}
	}
	elapsed := time.Since(start)
	made := reads() - readsBefore
	if budget := burst + qps*elapsed.Seconds() + 1; made > budget || made < burst {
		t.Errorf("%v live reads for %d forged reviews in %s, want %d to %.0f (--namespace-read-burst %d + --namespace-read-qps %v a second)", made, forged, elapsed, burst, budget, burst, qps)
	}
	if float64(skipped) != made || skipped+limited != forged {
		t.Errorf("%d skipped after %v reads, %d refused with the rate limit, of %d reviews", skipped, made, limited, forged)
	}
	if got := refused() - refusedBefore; got != float64(limited) {
		t.Errorf("token_projector_namespace_reads_throttled_total{result=refused} grew by %v, want %d", got, limited)
	}
}

// TestForgedFloodDoesNotStarveAdmissions: while reviews sent straight to
// the webhook port, for namespaces that do not exist, flood it at many times
// the namespace read limit, real pods naming new accounts are created
// through kube-apiserver in an opted-in namespace: none is refused, each
// gets its identity, and the creates never wait on their limiter. The
// flood's live reads stay within their own budget. (With one budget for
// both, as before, the flood spent the creates' budget: every real create
// waited, and under a long enough flood was refused.)
func TestForgedFloodDoesNotStarveAdmissions(t *testing.T) {
	const (
		readQPS, readBurst = 1, 3
		// The creates' burst covers the real pods (3 creates each, and a
		// restore's account read) with room to spare, at a pace that
		// would not refill it: any token the flood took shows as a wait.
		apiQPS, apiBurst = 0.5, 200
		pods             = 8
		workers          = 4
		maxForged        = 2000 // per worker: the flood is bounded
		manyTimes        = 10
	)
	ns := namespace(t, true) // created before the restart: the new webhook's cache shows it
	restartWebhook(t, func(o *server.Options) {
		o.NamespaceReadQPS, o.NamespaceReadBurst = readQPS, readBurst
		o.APIQPS, o.APIBurst = apiQPS, apiBurst
	})
	reads := func() float64 { return testenv.Counter(t, "token_projector_namespace_live_reads_total", nil) }
	readsRefused := func() float64 {
		return testenv.Counter(t, "token_projector_namespace_reads_throttled_total", map[string]string{"result": "refused"})
	}
	createsHeld := func() float64 { return testenv.Counter(t, "token_projector_api_throttled_total", nil) }
	readsBefore, readsRefusedBefore, createsHeldBefore := reads(), readsRefused(), createsHeld()

	forgedPod := podReview(t, "flood", "", pod("", "forged", classic("forged")))
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	var sent, refused, late atomic.Int64
	var mu sync.Mutex
	var unexpected []string
	c := webhookCaller(workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; i < maxForged && ctx.Err() == nil; i++ {
				req := forgedPod
				req.UID = types.UID(fmt.Sprintf("flood-%d-%d", w, i))
				req.Namespace = fmt.Sprintf("flood-nowhere-%d-%d-%d", nsCounter.Load(), w, i)
				resp, err := c.post(req)
				sent.Add(1)
				switch {
				case err == nil && resp.Result != nil && resp.Result.Code == http.StatusInternalServerError && strings.Contains(resp.Result.Message, namespaceReadLimited):
					refused.Add(1)
				case err == nil && resp.Allowed && len(resp.Patch) == 0:
					// skipped after its read
				case err == nil && resp.Result != nil && resp.Result.Code == http.StatusInternalServerError && strings.Contains(resp.Result.Message, "no answer within"):
					// its token came too late in its third of the deadline to read
					late.Add(1)
				default:
					mu.Lock()
					unexpected = append(unexpected, fmt.Sprintf("%v %+v", err, resp))
					mu.Unlock()
				}
			}
		})
	}
	// The real pods come once the flood has spent the namespace reads' budget.
	testenv.WaitFor(t, "the flood reached the namespace read limit", time.Minute, func() bool { return refused.Load() > 0 })
	var failed []string
	for i := range pods {
		sa := fmt.Sprintf("flood-real-%d", i)
		p := pod(ns, sa, classic(sa))
		if err := env.Admin.Create(context.Background(), p); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", sa, err))
			continue
		}
		if !testenv.MutatedOnce(p) {
			failed = append(failed, sa+": admitted without its token")
		}
	}
	floodAtPods := sent.Load()
	stop()
	wg.Wait()
	elapsed := time.Since(start)

	if len(failed) > 0 {
		t.Errorf("%d of %d real pods refused during the flood: %v", len(failed), pods, failed)
	}
	for i := range pods {
		assertIdentity(t, ns, fmt.Sprintf("flood-real-%d", i))
	}
	budget := readBurst + readQPS*elapsed.Seconds() + 1
	if floodAtPods < int64(manyTimes*budget) {
		t.Errorf("only %d forged reviews in %s before the last real pod: want at least %d times the namespace read budget (%.0f)", floodAtPods, elapsed, manyTimes, budget)
	}
	if made := reads() - readsBefore; made > budget {
		t.Errorf("%v live namespace reads for %d forged reviews in %s, want at most %.0f (--namespace-read-burst %d + --namespace-read-qps %d a second)", made, sent.Load(), elapsed, budget, readBurst, readQPS)
	}
	if got := readsRefused() - readsRefusedBefore; got == 0 || got > float64(refused.Load()) {
		t.Errorf("token_projector_namespace_reads_throttled_total{result=refused} grew by %v for %d reviews refused", got, refused.Load())
	}
	if got := createsHeld() - createsHeldBefore; got != 0 {
		t.Errorf("the creates waited on, or were refused by, --api-qps/--api-burst %v times during the flood: its budget is not the namespace reads'", got)
	}
	if len(unexpected) > 0 {
		t.Errorf("%d forged reviews neither skipped after a read nor failed (500) for want of a read in time, e.g. %s", len(unexpected), unexpected[0])
	}
	t.Logf("%d forged reviews in %s (%d refused by the namespace read limit, %d out of time waiting for it), %d real pods admitted",
		sent.Load(), elapsed.Round(time.Millisecond), refused.Load(), late.Load(), pods-len(failed))
}
