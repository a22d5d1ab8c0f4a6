package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// loadAccount is the account every load pod names (after the first pod,
// the webhook serves them from its caches).
const loadAccount = "loader"

const (
	// maxLoadPods bounds one load run.
	maxLoadPods = 6000
	// loadInterval paces each client: at most 2/loadInterval creations a
	// second, so that the bound lasts at least 2.5 minutes however fast the
	// machine (an upgrade or an eviction takes about one), and the pending
	// pods do not swamp the scheduler.
	loadInterval = 50 * time.Millisecond
)

// load creates annotated pods one after another, with two clients, until
// stopped or maxLoadPods: the webhook must admit and inject every one.
// The pods select no node, so that they stay Pending and cost the node
// nothing.
type load struct {
	created, failed, notInjected atomic.Int64
	mu                           sync.Mutex
	errs                         []string
	cancel                       context.CancelFunc
	wg                           sync.WaitGroup
	// ended is closed when both clients have stopped.
	ended chan struct{}
}

// startLoad starts the load; it stops when the test ends, whatever way it
// ends (a t.Fatal on the way included), if stop has not stopped it before.
func startLoad(t testing.TB, ctx context.Context, c kubernetes.Interface, ns string) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, ended: make(chan struct{})}
	t.Cleanup(l.halt)
	for range 2 {
		l.wg.Go(func() {
			tick := time.NewTicker(loadInterval)
			defer tick.Stop()
			for ctx.Err() == nil && l.created.Load()+l.failed.Load()+l.notInjected.Load() < maxLoadPods {
				l.createOne(ctx, c, ns)
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		})
	}
	go func() { l.wg.Wait(); close(l.ended) }()
	return l
}

func (l *load) createOne(ctx context.Context, c kubernetes.Interface, ns string) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "load-",
			Annotations:  map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "1h", mutate.AnnotationServiceAccount: loadAccount},
		},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"token-projector.io/test-node": "none"},
			Containers:   []corev1.Container{{Name: "app", Image: checkImage, ImagePullPolicy: corev1.PullNever}},
		},
	}
	// A request cut by the end of the run is not a failure of the webhook.
	reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	got, err := c.CoreV1().Pods(ns).Create(reqCtx, pod, metav1.CreateOptions{})
	switch {
	case err != nil:
		l.failed.Add(1)
		l.note(err.Error())
	case !testenv.MutatedOnce(got):
		l.notInjected.Add(1)
		l.note(fmt.Sprintf("pod %s was admitted without its token volume", got.Name))
	default:
		l.created.Add(1)
	}
}

func (l *load) note(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
}

// waitCreated waits until n more pods were created since the call, or one
// failed. A load that ended at its bound first fails the test: what follows
// would no longer run under load.
func (l *load) waitCreated(t testing.TB, e *env, n int64) {
	t.Helper()
	target := l.created.Load() + n
	reached := func() bool { return l.created.Load() >= target || l.failed.Load()+l.notInjected.Load() > 0 }
	ended := func() bool {
		select {
		case <-l.ended:
			return true
		default:
			return false
		}
	}
	e.waitFor(t, fmt.Sprintf("%d more load pods", n), 2*time.Minute, func(context.Context) (bool, error) {
		return reached() || ended(), nil
	})
	if !reached() {
		t.Fatalf("the load ended at its bound of %d pods before %d more were created", maxLoadPods, n)
	}
}

// halt stops the clients and waits for them.
func (l *load) halt() {
	l.cancel()
	l.wg.Wait()
}

// stop ends the run and returns the failed creations (refused, or
// admitted uninjected), reporting each kind.
func (l *load) stop(t testing.TB) int64 {
	t.Helper()
	l.halt()
	t.Logf("load: %d pods created and injected, %d creations failed, %d admitted without injection", l.created.Load(), l.failed.Load(), l.notInjected.Load())
	for _, e := range l.errs {
		t.Errorf("load: %s", e)
	}
	return l.failed.Load() + l.notInjected.Load()
}
