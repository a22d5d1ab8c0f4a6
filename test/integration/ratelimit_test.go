package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

// TestForgedReviewsAreRateLimited: reviews sent straight to the webhook
// port, bypassing kube-apiserver, for namespaces that do not exist each cost
// a live namespace read. With a tiny --api-qps/--api-burst the webhook makes
// at most burst (+ qps x elapsed) reads; every review over that budget gets
// the webhook's own 500 naming the rate limit, none a skip without its read.
func TestForgedReviewsAreRateLimited(t *testing.T) {
	const qps, burst, forged = 0.5, 3, 15
	restartWebhook(t, func(o *server.Options) { o.APIQPS, o.APIBurst = qps, burst })
	reads := func() float64 { return testenv.Counter(t, "token_projector_namespace_live_reads_total", nil) }
	refused := func() float64 {
		return testenv.Counter(t, "token_projector_api_throttled_total", map[string]string{"result": "refused"})
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
		case !resp.Allowed && resp.Result.Code == http.StatusInternalServerError && strings.Contains(resp.Result.Message, "the webhook's API rate limit (--api-qps, --api-burst) was reached"):
			limited++
		default:
			t.Errorf("review %d: allowed=%v result=%+v", i, resp.Allowed, resp.Result)
		}
	}
	elapsed := time.Since(start)
	made := reads() - readsBefore
	if budget := burst + qps*elapsed.Seconds() + 1; made > budget || made < burst {
		t.Errorf("%v live reads for %d forged reviews in %s, want %d to %.0f (--api-burst %d + --api-qps %v a second)", made, forged, elapsed, burst, budget, burst, qps)
	}
	if float64(skipped) != made || skipped+limited != forged {
		t.Errorf("%d skipped after %v reads, %d refused with the rate limit, of %d reviews", skipped, made, limited, forged)
	}
	if got := refused() - refusedBefore; got != float64(limited) {
		t.Errorf("token_projector_api_throttled_total{result=refused} grew by %v, want %d", got, limited)
	}
}
