package admission

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

var classicAnnotations = map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "nginx"}

// countingReader counts the live reads and answers them from objs.
func countingReader(reads *atomic.Int64, objs ...client.Object) client.Reader {
	return fake.NewClientBuilder().WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			reads.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
	}).Build()
}

// TestForgedFloodIsBounded: reviews sent straight to the webhook for
// namespaces that are not labelled, or do not exist, each cost a live read.
// With the limiter, a flood of them makes at most burst (+ qps x elapsed)
// reads; every review over that budget fails with the webhook's own 500
// naming the rate limit, and none is skipped without its read (skipping on
// a guess would let a real pod of a namespace labelled a moment ago start
// without its token).
func TestForgedFloodIsBounded(t *testing.T) {
	const qps, burst, flood = 2, 5, 60
	var reads atomic.Int64
	// Half exist unlabelled, half do not exist; all distinct, so that no
	// read is shared and each skip needs a read of its own.
	var unlabelled []client.Object
	for i := 0; i < flood; i += 2 {
		unlabelled = append(unlabelled, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("forged-%d", i)}})
	}
	h := &PodHandler{
		Config:               mutate.DefaultConfig(),
		Namespaces:           fake.NewClientBuilder().Build(),
		LiveNamespaces:       countingReader(&reads, unlabelled...),
		NamespaceReadLimiter: rate.NewLimiter(qps, burst),
		EnsureTimeout:        600 * time.Millisecond, // the read's share, 200ms, is below 1/qps: no wait fits
		Ensurer:              &stubEnsurer{},
	}
	start := time.Now()
	resps := make([]admission.Response, flood)
	var wg sync.WaitGroup
	for i := range flood {
		ns := fmt.Sprintf("forged-%d", i)
		wg.Go(func() {
			resps[i] = h.Handle(context.Background(), request(ns, admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	budget := burst + int64(qps*elapsed.Seconds()) + 1
	skipped, limited := 0, 0
	for _, r := range resps {
		switch {
		case r.Allowed && len(r.Patches) == 0:
			skipped++
		case r.Result.Code == http.StatusInternalServerError && strings.Contains(r.Result.Message, "the webhook's namespace read rate limit (--namespace-read-qps, --namespace-read-burst) was reached"):
			limited++
		default:
			t.Errorf("unexpected answer: allowed=%v code=%d %s", r.Allowed, r.Result.Code, r.Result.Message)
		}
	}
	if got := reads.Load(); got > budget || got == 0 {
		t.Errorf("%d live reads for %d forged reviews in %s, want 1 to %d (burst %d + %d/s)", got, flood, elapsed, budget, burst, qps)
	}
	if int64(skipped) != reads.Load() || skipped+limited != flood {
		t.Errorf("%d skipped, %d refused with the rate limit, after %d reads of %d reviews", skipped, limited, reads.Load(), flood)
	}
}

// blockingReader answers each live read with the next of answers, once the
// test releases it; calls says how many reads have started.
type blockingReader struct {
	answers []*corev1.Namespace // nil: not found
	release chan struct{}
	calls   atomic.Int64
}

func (r *blockingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	n := r.calls.Add(1)
	select {
	case <-r.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	ns := r.answers[min(int(n), len(r.answers))-1]
	c := fake.NewClientBuilder().Build()
	if ns != nil {
		c = fake.NewClientBuilder().WithObjects(ns).Build()
	}
	return c.Get(ctx, key, obj)
}

func (r *blockingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return fmt.Errorf("not used")
}

// waitFor polls cond until it holds, or fails the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("%s: not within 10s", what)
	}
}

// TestConcurrentReviewsShareOneRead: reviews of one namespace the cache has
// not seen, arriving while its live read is in flight, wait for that read:
// one read answers them all when it finds the namespace opted in.
func TestConcurrentReviewsShareOneRead(t *testing.T) {
	const n = 20
	labelled := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	live := &blockingReader{answers: []*corev1.Namespace{labelled}, release: make(chan struct{})}
	h := &PodHandler{
		Config:               mutate.DefaultConfig(),
		Namespaces:           fake.NewClientBuilder().Build(),
		LiveNamespaces:       live,
		NamespaceReadLimiter: rate.NewLimiter(rate.Inf, 0),
		EnsureTimeout:        time.Minute,
		Ensurer:              &stubEnsurer{},
	}
	resps := make([]admission.Response, n)
	var wg sync.WaitGroup
	admit := func(i int) {
		wg.Go(func() {
			resps[i] = h.Handle(context.Background(), request("fresh", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
		})
	}
	admit(0)
	waitFor(t, "the first review's read started", func() bool { return live.calls.Load() == 1 })
	for i := 1; i < n; i++ {
		admit(i)
	}
	waitFor(t, "every review joined the read", func() bool { return h.reads.waiting("fresh") == n })
	close(live.release)
	wg.Wait()
	if got := live.calls.Load(); got != 1 {
		t.Errorf("%d live reads for %d concurrent reviews of one namespace, want 1", got, n)
	}
	for i, r := range resps {
		if !r.Allowed || len(r.Patches) == 0 {
			t.Errorf("review %d: allowed=%v patches=%d (%s), want mutated", i, r.Allowed, len(r.Patches), r.Result.Message)
		}
	}
}

// TestJoinedStaleNotOptedInIsReadAgain: a review that joins a read already
// sent may be answered from before a label kube-apiserver has since seen.
// It does not skip on that read's "not opted in": it reads again. Here the
// first read (sent before the second review arrived) finds no label, the
// second finds it: the first review is skipped, the second mutated.
func TestJoinedStaleNotOptedInIsReadAgain(t *testing.T) {
	unlabelled := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}}
	labelled := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	live := &blockingReader{answers: []*corev1.Namespace{unlabelled, labelled}, release: make(chan struct{})}
	h := &PodHandler{
		Config:         mutate.DefaultConfig(),
		Namespaces:     fake.NewClientBuilder().Build(),
		LiveNamespaces: live,
		EnsureTimeout:  time.Minute,
		Ensurer:        &stubEnsurer{},
	}
	var first, second admission.Response
	var wg sync.WaitGroup
	wg.Go(func() {
		first = h.Handle(context.Background(), request("fresh", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
	})
	waitFor(t, "the first review's read started", func() bool { return live.calls.Load() == 1 })
	wg.Go(func() {
		second = h.Handle(context.Background(), request("fresh", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
	})
	waitFor(t, "the second review joined the read", func() bool { return h.reads.waiting("fresh") == 2 })
	close(live.release)
	wg.Wait()
	if !first.Allowed || len(first.Patches) != 0 {
		t.Errorf("first review: allowed=%v patches=%d, want skipped on its own read", first.Allowed, len(first.Patches))
	}
	if !second.Allowed || len(second.Patches) == 0 {
		t.Errorf("second review: allowed=%v patches=%d (%s), want mutated after its own read", second.Allowed, len(second.Patches), second.Result.Message)
	}
	if got := live.calls.Load(); got != 2 {
		t.Errorf("%d live reads, want 2", got)
	}
}

// countingLimiter counts its waits.
type countingLimiter struct {
	*rate.Limiter
	waits atomic.Int64
}

func (l *countingLimiter) Wait(ctx context.Context) error {
	l.waits.Add(1)
	return l.Limiter.Wait(ctx)
}

// TestWarmPathNeverWaits: a namespace the cache says is opted in, and an
// identity the Ensurer finds cached, admit a pod with the limiter exhausted:
// the warm path makes no API call, so it never waits on the limiter.
func TestWarmPathNeverWaits(t *testing.T) {
	exhausted := &countingLimiter{Limiter: rate.NewLimiter(rate.Every(time.Hour), 1)}
	exhausted.Allow() // its one token
	var reads atomic.Int64
	h := newHandler(&stubEnsurer{})
	h.LiveNamespaces = countingReader(&reads)
	h.NamespaceReadLimiter = exhausted
	h.EnsureTimeout = 3 * time.Second
	resp := h.Handle(context.Background(), request("demo", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("warm admission with the limiter exhausted: allowed=%v code=%d %s", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if exhausted.waits.Load() != 0 || reads.Load() != 0 {
		t.Errorf("warm admission waited %d times on the limiter and read %d namespaces live, want 0 and 0", exhausted.waits.Load(), reads.Load())
	}
	// The same limiter refuses a read the cache cannot answer (the control).
	resp = h.Handle(context.Background(), request("nowhere", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
	if resp.Result.Code != http.StatusInternalServerError || exhausted.waits.Load() != 1 || reads.Load() != 0 {
		t.Errorf("cold namespace with the limiter exhausted: code %d (%s), %d waits, %d reads; want 500, 1, 0", resp.Result.Code, resp.Result.Message, exhausted.waits.Load(), reads.Load())
	}
}

// TestColdEnsureOverBudgetIsRateLimited: a pod naming a new account, when
// the Ensurer's API budget (--api-qps, --api-burst) is spent, fails with
// a 500 counted as rate-limited (not as an ensure failure of the API
// server), and nothing is written.
func TestColdEnsureOverBudgetIsRateLimited(t *testing.T) {
	exhausted := rate.NewLimiter(rate.Every(time.Hour), 1)
	exhausted.Allow()
	api := fake.NewClientBuilder().Build()
	ens := &rbac.Ensurer{Cache: api, Live: api, Writer: api, Limiter: exhausted, Timeout: time.Second}
	h := newHandler(ens)
	h.EnsureTimeout = time.Second
	before := testutil.ToFloat64(admissions.WithLabelValues(resourcePod, outcomeErrored, reasonRateLimited))
	resp := h.Handle(context.Background(), request("demo", admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
	if resp.Allowed || resp.Result.Code != http.StatusInternalServerError || !strings.Contains(resp.Result.Message, "rate limit") {
		t.Fatalf("cold admission over the API budget: allowed=%v code=%d %q; want a 500 naming the rate limit", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if got := testutil.ToFloat64(admissions.WithLabelValues(resourcePod, outcomeErrored, reasonRateLimited)) - before; got != 1 {
		t.Errorf("admissions counted as rate-limited: %v, want 1", got)
	}
	var sas corev1.ServiceAccountList
	if err := api.List(context.Background(), &sas); err != nil || len(sas.Items) != 0 {
		t.Errorf("ServiceAccounts written over budget: %v, %v", sas.Items, err)
	}
}

// TestLaterCallerOutlivesTheFirstsDeadline: a review that joins a shared
// namespace read started by one with less time left does not fail with
// that one's deadline: when the read runs out of the first's time (its
// context expires, or the limiter gives it no token before it), the later
// review reads again under its own deadline and gets the answer.
func TestLaterCallerOutlivesTheFirstsDeadline(t *testing.T) {
	labelled := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	for name, firstRead := range map[string]func(ctx context.Context, release <-chan struct{}) error{
		"its context expires": func(ctx context.Context, release <-chan struct{}) error {
			<-release
			<-ctx.Done()
			return ctx.Err()
		},
		"no token before its deadline": func(_ context.Context, release <-chan struct{}) error {
			<-release
			return &rateLimitedError{err: fmt.Errorf("no API request allowed before the admission's deadline")}
		},
	} {
		t.Run(name, func(t *testing.T) {
			var reads namespaceReads
			var calls atomic.Int64
			release := make(chan struct{})
			read := func(ctx context.Context, _ string, sending func()) (*metav1.PartialObjectMetadata, error) {
				if calls.Add(1) == 1 {
					return nil, firstRead(ctx, release)
				}
				if _, ok := ctx.Deadline(); !ok {
					t.Error("the second read has no deadline")
				}
				sending()
				return labelled, nil
			}
			short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancelShort()
			long, cancelLong := context.WithTimeout(context.Background(), time.Minute)
			defer cancelLong()
			var firstErr error
			var wg sync.WaitGroup
			wg.Go(func() { _, firstErr = reads.get(short, "fresh", read) })
			waitFor(t, "the first review's read started", func() bool { return calls.Load() == 1 })
			var ns *metav1.PartialObjectMetadata
			var err error
			wg.Go(func() { ns, err = reads.get(long, "fresh", read) })
			waitFor(t, "the second review joined the read", func() bool { return reads.waiting("fresh") == 2 })
			close(release)
			wg.Wait()
			if firstErr == nil {
				t.Error("the first review, whose time ran out, got no error")
			}
			if err != nil || !labelledIn(ns) {
				t.Errorf("the review with time left: %v, %v; want the namespace opted in from a read of its own", ns, err)
			}
			if got := calls.Load(); got != 2 {
				t.Errorf("%d reads, want 2", got)
			}
		})
	}
}

// TestForgedFloodLeavesCreatesTheirBudget: a flood of forged reviews for
// namespaces that do not exist, at twelve times the namespace read burst,
// runs while real reviews in an opted-in namespace name new accounts. The
// flood spends the namespace reads' budget only: every real review is
// mutated with its account created, and the creates' limiter is waited on
// for creates alone, 3 per new account.
func TestForgedFloodLeavesCreatesTheirBudget(t *testing.T) {
	const flood, accounts, readBurst = 60, 10, 5
	// A new account costs 3 creates and the live list of its namespace's
	// RoleBindings (the binding check), all from the creates' budget.
	const perAccount = 4
	creates := &countingLimiter{Limiter: rate.NewLimiter(rate.Every(time.Hour), perAccount*accounts)}
	api := fake.NewClientBuilder().Build()
	h := newHandler(&rbac.Ensurer{Cache: api, Live: api, Writer: api, Limiter: creates, Timeout: 10 * time.Second})
	var reads atomic.Int64
	h.LiveNamespaces = countingReader(&reads)
	h.NamespaceReadLimiter = rate.NewLimiter(rate.Every(time.Hour), readBurst)
	h.EnsureTimeout = 10 * time.Second
	forged := make([]admission.Response, flood)
	genuine := make([]admission.Response, accounts)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			ns := fmt.Sprintf("forged-%d", i)
			forged[i] = h.Handle(context.Background(), request(ns, admissionv1.Create, podJSON(t, classicAnnotations, nil, "")))
		})
		if i%(flood/accounts) == 0 {
			j := i / (flood / accounts)
			wg.Go(func() {
				annotations := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: fmt.Sprintf("new-%d", j)}
				genuine[j] = h.Handle(context.Background(), request("demo", admissionv1.Create, podJSON(t, annotations, nil, "")))
			})
		}
	}
	wg.Wait()
	refused := 0
	for _, r := range forged {
		if r.Result.Code == http.StatusInternalServerError && strings.Contains(r.Result.Message, "namespace read rate limit (--namespace-read-qps, --namespace-read-burst)") {
			refused++
		}
	}
	if refused != flood-readBurst || reads.Load() != readBurst {
		t.Errorf("forged reviews: %d refused by the namespace read limit after %d reads, want %d and %d", refused, reads.Load(), flood-readBurst, readBurst)
	}
	for j, r := range genuine {
		if !r.Allowed || len(r.Patches) == 0 {
			t.Errorf("real review %d during the flood: allowed=%v code=%d %s, want mutated", j, r.Allowed, r.Result.Code, r.Result.Message)
		}
	}
	var sas corev1.ServiceAccountList
	if err := api.List(context.Background(), &sas); err != nil || len(sas.Items) != accounts {
		t.Errorf("%d ServiceAccounts created (%v), want %d", len(sas.Items), err, accounts)
	}
	if got := creates.waits.Load(); got != perAccount*accounts {
		t.Errorf("the creates' limiter was waited on %d times, want %d (3 creates and 1 binding list per new account, no namespace read)", got, perAccount*accounts)
	}
}
