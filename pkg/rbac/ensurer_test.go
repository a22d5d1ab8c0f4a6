package rbac

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// startHeld starts an ensure of demo/app and returns once the API server
// holds it at the gate; the channel gets the ensure's error.
func startHeld(ctx context.Context, e *Ensurer, api *gatedAPI) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := e.Ensure(ctx, "demo", "app", false)
		done <- err
	}()
	<-api.held
	return done
}

// waitCallers waits until n callers wait on the ensure of key.
func waitCallers(t *testing.T, e *Ensurer, key string, n int32) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		f := e.flights[key]
		e.mu.Unlock()
		if f != nil && f.callers.Load() >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d callers did not join the ensure of %s within 30s", n, key)
}

// TestWaiterAnswersByItsOwnDeadline: a caller that joins an ensure held by
// the API server returns when its own deadline passes, with an error that
// says what the ensure was waiting for, while the ensure goes on; it then
// completes for the caller that started it.
func TestWaiterAnswersByItsOwnDeadline(t *testing.T) {
	api := newGatedAPI()
	api.gate, api.gateKind = make(chan struct{}), "RoleBinding"
	e := ensurerOn(api)

	leader := startHeld(context.Background(), e, api) // at the RoleBinding, held

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.Ensure(ctx, "demo", "app", false)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "creating RoleBinding demo/app-create-token") {
		t.Fatalf("waiter: want its own deadline error naming the held step, got %v", err)
	}
	select {
	case err := <-leader:
		t.Fatalf("the leader returned (%v) while its RoleBinding was still held", err)
	default:
	}

	close(api.gate)
	if err := <-leader; err != nil {
		t.Fatalf("leader: %v", err)
	}
	if got := api.writes.Load(); got != 3 {
		t.Errorf("writes = %d, want 3", got)
	}
}

// TestLeaderCancelledDoesNotFailOthers: the request that started an ensure
// goes away; the ensure runs on, under its own context, for those still
// waiting.
func TestLeaderCancelledDoesNotFailOthers(t *testing.T) {
	api := newGatedAPI()
	api.gate, api.gateKind = make(chan struct{}), "RoleBinding"
	e := ensurerOn(api)

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leader := startHeld(leaderCtx, e, api)
	waiter := make(chan Result, 1)
	waiterErr := make(chan error, 1)
	go func() {
		res, err := e.Ensure(context.Background(), "demo", "app", false)
		waiter <- res
		waiterErr <- err
	}()
	waitCallers(t, e, "demo/app", 2)

	cancelLeader()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled leader: want context.Canceled, got %v", err)
	}
	close(api.gate)
	res := <-waiter
	if err := <-waiterErr; err != nil {
		t.Fatalf("the waiter failed with its leader: %v", err)
	}
	if !res.RBAC || !res.ManagedAccount || len(res.Created) != 3 {
		t.Errorf("waiter's result %+v: want RBAC for a managed account and the 3 creations reported to it", res)
	}
	if got := api.writes.Load(); got != 3 {
		t.Errorf("writes = %d, want 3", got)
	}
}

// TestBurstForOneNewAccountWritesThree: concurrent callers for one new
// account, and callers right after it while the cache has not caught up
// (here it never does), make 3 creates in all, and the creations are
// reported to one caller only.
func TestBurstForOneNewAccountWritesThree(t *testing.T) {
	api := newGatedAPI()
	api.gate, api.gateKind = make(chan struct{}), "ServiceAccount"
	e := ensurerOn(api)
	e.Cache = fake.NewClientBuilder().Build() // a cache that lags behind every create
	e.CacheWait = 5 * time.Second

	const n = 32
	var wg sync.WaitGroup
	results := make(chan Result, 2*n)
	ensure := func() {
		res, err := e.Ensure(context.Background(), "demo", "burst", false)
		if err != nil {
			t.Error(err)
		}
		results <- res
	}
	for range n {
		wg.Go(ensure)
	}
	<-api.held
	close(api.gate)
	wg.Wait()
	for range n { // after the burst, before the cache has caught up
		ensure()
	}
	close(results)
	told := 0
	for res := range results {
		if !res.RBAC || !res.ManagedAccount {
			t.Errorf("a caller got %+v", res)
		}
		told += len(res.Created)
	}
	if told != 3 {
		t.Errorf("creations reported %d times, want 3 (once each)", told)
	}
	if got := api.writes.Load(); got != 3 {
		t.Errorf("writes = %d, want 3", got)
	}
}

// TestAccountsItDidNotCreate: an existing account gets RBAC only if the
// webhook created it or its owner labelled it; any other is neither given
// RBAC nor written to, dry run included.
func TestAccountsItDidNotCreate(t *testing.T) {
	ours := ServiceAccount("demo", "ours")
	labelled := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "labelled",
		Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	foreign := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "foreign", Labels: map[string]string{"team": "a"}}}
	for _, tc := range []struct {
		sa         string
		want       Result
		wantWrites int32
	}{
		{"ours", Result{RBAC: true, ManagedAccount: true}, 2},
		{"labelled", Result{RBAC: true}, 2},
		{"foreign", Result{}, 0},
	} {
		t.Run(tc.sa, func(t *testing.T) {
			api := newGatedAPI(ours.DeepCopy(), labelled.DeepCopy(), foreign.DeepCopy())
			e := ensurerOn(api)
			dry, err := e.Ensure(context.Background(), "demo", tc.sa, true)
			if err != nil || dry.RBAC != tc.want.RBAC || dry.ManagedAccount != tc.want.ManagedAccount || api.writes.Load() != 0 {
				t.Fatalf("dry run: %+v, %v, %d writes; want %+v and none", dry, err, api.writes.Load(), tc.want)
			}
			res, err := e.Ensure(context.Background(), "demo", tc.sa, false)
			if err != nil || res.RBAC != tc.want.RBAC || res.ManagedAccount != tc.want.ManagedAccount {
				t.Fatalf("got %+v, %v; want %+v", res, err, tc.want)
			}
			if got := api.writes.Load(); got != tc.wantWrites {
				t.Errorf("writes = %d, want %d", got, tc.wantWrites)
			}
			var sa corev1.ServiceAccount
			if err := api.store.Get(context.Background(), client.ObjectKey{Namespace: "demo", Name: tc.sa}, &sa); err != nil {
				t.Fatal(err)
			}
			if tc.sa != "ours" && IsManaged(&sa) {
				t.Errorf("the account was relabelled: %v", sa.Labels)
			}
		})
	}
}

// TestDeletedSinceTheLastEnsureIsCreatedAgain: an object deleted right after
// an ensure (here the Role, while the cache has not yet shown the account
// that ensure created) is created again by the next ensure. The reconciler
// restores an identity exactly so; an answer remembered from the earlier
// ensure would leave the Role missing for good.
func TestDeletedSinceTheLastEnsureIsCreatedAgain(t *testing.T) {
	ctx := context.Background()
	role, rb := Role("demo", "app"), RoleBinding("demo", "app")
	api := newGatedAPI(role, rb)
	cache := fake.NewClientBuilder().WithObjects(role.DeepCopy(), rb.DeepCopy()).Build() // never shows the account
	e := ensurerOn(api)
	e.Cache, e.CacheWait = cache, 5*time.Second

	if _, err := e.Ensure(ctx, "demo", "app", false); err != nil {
		t.Fatal(err)
	}
	if got := api.writes.Load(); got != 1 {
		t.Fatalf("writes = %d, want 1 (the account)", got)
	}
	for _, c := range []client.Client{api.store, cache} { // deleted, and the cache has seen it
		if err := c.Delete(ctx, Role("demo", "app")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.Ensure(ctx, "demo", "app", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created) != 1 || res.Created[0].Kind != "Role" || !res.RBAC || !res.ManagedAccount {
		t.Errorf("second ensure: %+v, want the Role created again for the webhook's own account", res)
	}
	if got := api.writes.Load(); got != 2 {
		t.Errorf("writes = %d, want 2 (the account, then the Role again; the account still pending in the cache)", got)
	}
}

// TestForeignAccountAnswerDoesNotDependOnCacheLag: an existing account
// that is not eligible, with a Role of our name that is not ours and
// differs, gets no RBAC and no error whether or not the cache has shown
// the account yet; before, a cache that had not made the Role's conflict
// the answer (a denial). An account whose create failed is an error, never
// a conflict: whose it is is unknown.
func TestForeignAccountAnswerDoesNotDependOnCacheLag(t *testing.T) {
	ctx := context.Background()
	foreign := func() []client.Object {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "app", Labels: map[string]string{"team": "a"}}}
		role := Role("demo", "app")
		role.Labels = nil
		role.Rules[0].Verbs = []string{"get", "create"}
		return []client.Object{sa, role}
	}
	fresh := newGatedAPI(foreign()...)
	want, err := ensurerOn(fresh).Ensure(ctx, "demo", "app", false)
	if err != nil || want.RBAC || want.ManagedAccount {
		t.Fatalf("with a fresh cache: %+v, %v; want no RBAC and no error", want, err)
	}

	behind := newGatedAPI(foreign()...)
	e := ensurerOn(behind)
	e.Cache = fake.NewClientBuilder().Build() // has not shown the account yet
	got, err := e.Ensure(ctx, "demo", "app", false)
	if err != nil || got.RBAC != want.RBAC || got.ManagedAccount != want.ManagedAccount || len(got.Created) != 0 {
		t.Errorf("with a cache behind: %+v, %v; want %+v as with a fresh one", got, err, want)
	}
	if err := behind.store.Get(ctx, client.ObjectKey{Namespace: "demo", Name: Name("app")}, RoleBinding("demo", "app")); !apierrors.IsNotFound(err) {
		t.Errorf("a RoleBinding for an account that is not eligible: %v", err)
	}

	down := newGatedAPI(foreign()[1:]...) // no account; its create fails
	down.failKind = "ServiceAccount"
	e = ensurerOn(down)
	_, err = e.Ensure(ctx, "demo", "app", false)
	if err == nil || IsConflict(err) || !strings.Contains(err.Error(), "creating ServiceAccount demo/app") {
		t.Errorf("the account's create failed, the Role conflicts: got %v, want the account's error and no conflict", err)
	}
}
