package reconcile

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// The reconciler's memory of when each identity was last used. It is fed
// only by what every replica can see, pod and workload events and the
// managed objects' creation times, never by one replica's admissions: an
// admission served by another replica would be missing from it, and the
// non-leader replicas, whose reconciler never runs, would keep such entries
// forever. Collection therefore leans on objects on the API server to see
// admissions in flight (collect.go).

func (r *Reconciler) touch(id types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastUsed == nil {
		r.lastUsed = map[types.NamespacedName]time.Time{}
	}
	r.lastUsed[id] = r.now()
	delete(r.condemned, id)
}

// forget drops an identity that has nothing left to collect or that
// collection does not concern.
func (r *Reconciler) forget(id types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.lastUsed, id)
	delete(r.condemned, id)
}

// unusedSince is the earliest time the identity may have stopped being used.
func (r *Reconciler) unusedSince(id types.NamespacedName) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	since := r.started
	if t := r.lastUsed[id]; t.After(since) {
		since = t
	}
	return since
}

// tracked is how many identities the reconciler remembers, for tests.
func (r *Reconciler) tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lastUsed) + len(r.condemned)
}

// Start records when this replica began reconciling. pkg/server adds the
// Reconciler to the manager as a runnable that needs leader election, so
// that it starts when this replica is elected, together with the
// controller: an identity counts as used at that moment, since this replica
// has not been watching its pods and workloads before.
func (r *Reconciler) Start(ctx context.Context) error {
	r.mu.Lock()
	r.started = r.now()
	r.mu.Unlock()
	<-ctx.Done()
	return nil
}
