package cluster_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// fatalTB is a testing.TB whose Fatal ends the goroutine, as testing.T's
// does, and whose cleanups the test runs itself: a scenario can fail in it
// without failing the test that watches it.
type fatalTB struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	cleanups []func()
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmtArgs(args)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fatalTB) runCleanups() {
	f.mu.Lock()
	fns := f.cleanups
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func fmtArgs(args []any) string {
	var b strings.Builder
	for _, a := range args {
		if s, ok := a.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

// TestFatalInALoadPhase: a load scenario that ends in a t.Fatal before it
// finishes stops its load when the test's cleanups run, and its phase
// reports "unfinished" and fails the summary, never a count of 0.
func TestFatalInALoadPhase(t *testing.T) {
	var p phase
	ft := &fatalTB{TB: t}
	var l *load
	done := make(chan struct{})
	go func() {
		defer close(done)
		l = startLoad(ft, context.Background(), fake.NewClientset(), "load")
		ft.Fatal("the upgrade did not roll out")
		p.finish(l.stop(ft)) // never reached
	}()
	<-done
	if ft.fatal == "" {
		t.Fatal("the scenario did not fail")
	}
	select {
	case <-l.ended:
		t.Fatal("the load ended before the test's cleanups ran: it could not have been running")
	default:
	}
	ft.runCleanups()
	select {
	case <-l.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the load still runs after the test's cleanups")
	}
	if got := p.String(); got != "unfinished" {
		t.Errorf("an unfinished phase reports %q, want unfinished", got)
	}
	if p.ok() {
		t.Errorf("an unfinished phase counts as ok")
	}

	var finished phase
	finished.finish(0)
	if finished.String() != "0" || !finished.ok() {
		t.Errorf("a finished phase without failures reports %q, ok %v", finished.String(), finished.ok())
	}
}
