package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// previousLease stands for a Lease the release elected through before an
// upgrade whose chart names another: a release not named token-projector,
// installed by a chart that passed no --leader-election-id, elected through
// the webhook's default, token-projector-reconciler, and the chart now
// names <fullname>-reconciler. The release of this tier is named
// token-projector, whose Lease that change left alone, so the scenario
// first moves its running Deployment to previousLease.
const previousLease = "token-projector-previous-reconciler"

// electOnPreviousLease patches the webhook's running Deployment to elect
// through previousLease, as a release installed before the per-release
// Lease runs, and waits for that rollout and for the Lease it left to be
// released.
func (e *env) electOnPreviousLease(t *testing.T) {
	t.Helper()
	d, err := e.Client.AppsV1().Deployments(releaseNS).Get(e.ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args := slices.DeleteFunc(slices.Clone(d.Spec.Template.Spec.Containers[0].Args), func(a string) bool {
		return strings.HasPrefix(a, "--leader-election-id=")
	})
	patch, err := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": append(args, "--leader-election-id="+previousLease)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.AppsV1().Deployments(releaseNS).Patch(e.ctx, release, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitWebhookReady(t, 2)
	e.waitFor(t, "a replica leading through "+previousLease+" and no other Lease held", 2*time.Minute, func(ctx context.Context) (bool, error) {
		held, err := e.heldLeases(ctx)
		return err == nil && len(held) == 1 && held[previousLease] != "", err
	})
}

// heldLeases are the Leases of the release namespace that a holder renewed
// within their duration, by name, with their holder.
func (e *env) heldLeases(ctx context.Context) (map[string]string, error) {
	list, err := e.Client.CoordinationV1().Leases(releaseNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	held := map[string]string{}
	now := time.Now()
	for _, l := range list.Items {
		s := l.Spec
		if s.HolderIdentity == nil || *s.HolderIdentity == "" || s.RenewTime == nil || s.LeaseDurationSeconds == nil {
			continue
		}
		if s.RenewTime.Add(time.Duration(*s.LeaseDurationSeconds) * time.Second).After(now) {
			held[l.Name] = *s.HolderIdentity
		}
	}
	return held, nil
}

// leaderWatch samples the release namespace's Leases until stopped, and
// records every moment two of them were held at once: two reconcilers
// leading.
type leaderWatch struct {
	stop    context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	samples int
	both    []string
}

func (e *env) watchLeaders(t *testing.T) *leaderWatch {
	ctx, cancel := context.WithCancel(e.ctx)
	w := &leaderWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			held, err := e.heldLeases(ctx)
			if err == nil {
				w.mu.Lock()
				w.samples++
				if len(held) > 1 {
					w.both = append(w.both, fmt.Sprintf("%s: %v", time.Now().Format(time.StampMilli), held))
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(cancel)
	return w
}

// check stops the watch and fails the test if two Leases were ever held at
// once, or if it sampled nothing.
func (w *leaderWatch) check(t *testing.T) {
	t.Helper()
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.samples == 0 {
		t.Error("the Leases were never sampled during the upgrade")
	}
	if len(w.both) > 0 {
		t.Errorf("two reconcilers led at once during the upgrade (%d of %d samples), first: %s", len(w.both), w.samples, w.both[0])
	}
}

// leaseOf is the Lease the Deployment d's webhook elects through.
func leaseOf(d *appsv1.Deployment) string {
	id := ""
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--leader-election-id="); ok {
			id = v
		}
	}
	return id
}
