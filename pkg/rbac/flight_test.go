package rbac

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// panickingWriter panics in its first create of a ServiceAccount, once
// release is closed, as a bug in an ensure would.
type panickingWriter struct {
	client.Writer
	kind    string // of the object whose create panics
	held    chan struct{}
	release chan struct{}
	armed   atomic.Bool
}

func (w *panickingWriter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if kindName(obj) == w.kind && w.armed.CompareAndSwap(true, false) {
		close(w.held)
		<-w.release
		panic("boom")
	}
	return w.Writer.Create(ctx, obj, opts...)
}

// TestPanicFailsTheFlightNotTheProcess: an ensure that panics on its own
// goroutine fails every caller waiting on it with an error that says so,
// is counted, and is forgotten: the process goes on (the test would die
// otherwise), and the next ensure of the account starts afresh and
// completes.
func TestPanicFailsTheFlightNotTheProcess(t *testing.T) {
	// The account's create runs on the flight's goroutine; a new account's
	// Role is created on a goroutine of its own beside it (ensureNew).
	for _, kind := range []string{kindServiceAccount, kindRole} {
		t.Run(kind, func(t *testing.T) { testPanicFailsTheFlight(t, kind) })
	}
}

func testPanicFailsTheFlight(t *testing.T, kind string) {
	api := newGatedAPI()
	w := &panickingWriter{Writer: api, kind: kind, held: make(chan struct{}), release: make(chan struct{})}
	w.armed.Store(true)
	e := &Ensurer{Cache: api.cache, Live: api, Writer: w, Timeout: DefaultTimeout}
	before := testutil.ToFloat64(ensurePanics)

	errs := make(chan error, 2)
	ensure := func() {
		_, err := e.Ensure(context.Background(), "demo", "app", false)
		errs <- err
	}
	go ensure()
	<-w.held
	go ensure()
	waitCallers(t, e, "demo/app", 2)
	close(w.release)
	for range 2 {
		if err := <-errs; err == nil || !strings.Contains(err.Error(), "ensuring demo/app failed: internal error (panic: boom)") {
			t.Errorf("a caller of the ensure that panicked: %v, want an error naming the account and the panic", err)
		}
	}
	if got := testutil.ToFloat64(ensurePanics) - before; got != 1 {
		t.Errorf("token_projector_ensure_panics_total grew by %v, want 1", got)
	}
	e.mu.Lock()
	left := len(e.flights)
	e.mu.Unlock()
	if left != 0 {
		t.Errorf("%d flights left after the panic, want none", left)
	}

	res, err := e.Ensure(context.Background(), "demo", "app", false)
	if err != nil || !res.RBAC {
		t.Fatalf("the ensure after the panic: %+v, %v; want the identity ensured", res, err)
	}

}
