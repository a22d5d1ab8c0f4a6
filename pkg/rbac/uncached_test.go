package rbac

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// testClock is the Ensurer's clock in tests that let time pass.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// lagging is an Ensurer whose cache never shows anything on its own (a
// fake cache that stays empty), so that what it created counts as present
// only while held (CacheWait); events reach it only as the test delivers
// them.
func lagging(api *gatedAPI) (*Ensurer, map[string]toolscache.ResourceEventHandler) {
	e := ensurerOn(api)
	e.Cache, e.CacheWait = fake.NewClientBuilder().Build(), time.Hour
	events := map[string]toolscache.ResourceEventHandler{}
	for _, kind := range []string{kindServiceAccount, kindRole, kindRoleBinding} {
		events[kind] = e.CacheEventHandler(kind)
	}
	return e, events
}

func createdKinds(res Result) []string {
	var kinds []string
	for _, c := range res.Created {
		kinds = append(kinds, c.Kind)
	}
	return kinds
}

// expect runs an ensure (or restore) and checks what it created.
func expect(t *testing.T, what string, res Result, err error, kinds ...string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got := createdKinds(res); !slices.Equal(got, kinds) {
		t.Fatalf("%s created %v, want %v", what, got, kinds)
	}
	if !res.RBAC || !res.ManagedAccount {
		t.Fatalf("%s: %+v, want RBAC for the webhook's own account", what, res)
	}
}

// TestDeletedBeforeTheCacheShowedIt: an object the Ensurer created counts
// as present until the informer delivers any event of it; then the cache
// is the truth, so that an object deleted before the cache ever showed it
// is created again by the next ensure or restore, where it counted as
// present for all of CacheWait. Until then, nothing is created twice,
// though events of other objects of the same name (another UID) arrive.
func TestDeletedBeforeTheCacheShowedIt(t *testing.T) {
	ctx := context.Background()
	api := newGatedAPI()
	var mu sync.Mutex
	created := map[string]client.Object{}
	api.created = func(o client.Object) {
		mu.Lock()
		created[kindName(o)] = o
		mu.Unlock()
	}
	last := func(kind string) client.Object {
		mu.Lock()
		defer mu.Unlock()
		return created[kind]
	}
	deleteLive := func(o client.Object) {
		t.Helper()
		if err := api.store.Delete(ctx, o.DeepCopyObject().(client.Object)); err != nil {
			t.Fatal(err)
		}
	}
	e, events := lagging(api)

	res, err := e.Ensure(ctx, "demo", "app", false)
	expect(t, "the first ensure", res, err, kindServiceAccount, kindRole, kindRoleBinding)

	older := RoleBinding("demo", "app")
	older.UID = "an-older-one"
	events[kindRoleBinding].OnDelete(older)
	res, err = e.Ensure(ctx, "demo", "app", false)
	expect(t, "an ensure right after, the cache still behind", res, err)

	rb := last(kindRoleBinding)
	deleteLive(rb)
	events[kindRoleBinding].OnAdd(rb, false)
	events[kindRoleBinding].OnDelete(rb)
	res, err = e.Ensure(ctx, "demo", "app", false)
	expect(t, "an ensure after the RoleBinding was deleted", res, err, kindRoleBinding)

	role := last(kindRole)
	deleteLive(role)
	events[kindRole].OnDelete(toolscache.DeletedFinalStateUnknown{Key: "demo/" + Name("app"), Obj: role})
	res, err = e.Restore(ctx, "demo", "app")
	expect(t, "a restore after the Role was deleted (a tombstone)", res, err, kindRole)

	deleteLive(last(kindServiceAccount))
	events[kindServiceAccount].OnDelete(toolscache.DeletedFinalStateUnknown{Key: "demo/app"})
	res, err = e.Ensure(ctx, "demo", "app", false)
	expect(t, "an ensure after the account was deleted (a tombstone without its object)", res, err, kindServiceAccount)

	if got := api.writes.Load(); got != 6 {
		t.Errorf("creates = %d, want 6: 3, then each deleted object once", got)
	}
}

// TestEventBeforeTheCreatesAnswer: the informer may deliver a new object,
// and its deletion, before the API server's answer to the create reaches
// the Ensurer; the object must not then count as present.
func TestEventBeforeTheCreatesAnswer(t *testing.T) {
	ctx := context.Background()
	api := newGatedAPI()
	e, events := lagging(api)
	api.created = func(o client.Object) {
		if kindName(o) != kindRoleBinding {
			return
		}
		if err := api.store.Delete(ctx, o.DeepCopyObject().(client.Object)); err != nil {
			t.Error(err)
		}
		events[kindRoleBinding].OnAdd(o, false)
		events[kindRoleBinding].OnDelete(o)
	}
	res, err := e.Ensure(ctx, "demo", "app", false)
	expect(t, "the first ensure", res, err, kindServiceAccount, kindRole, kindRoleBinding)
	api.created = nil
	res, err = e.Ensure(ctx, "demo", "app", false)
	expect(t, "the next ensure", res, err, kindRoleBinding)
}

// TestCreatedCountsAtMostCacheWait: without any event, an object created
// here counts as present for CacheWait and no longer; then the next
// ensure checks the account's bindings again and meets what exists with a
// create and a live read.
func TestCreatedCountsAtMostCacheWait(t *testing.T) {
	ctx := context.Background()
	api := newGatedAPI()
	e, _ := lagging(api)
	clock := newTestClock()
	e.now, e.CacheWait = clock.Now, time.Second

	res, err := e.Ensure(ctx, "demo", "app", false)
	expect(t, "the first ensure", res, err, kindServiceAccount, kindRole, kindRoleBinding)
	calls := api.calls()
	clock.advance(e.CacheWait - time.Millisecond)
	res, err = e.Ensure(ctx, "demo", "app", false)
	expect(t, "an ensure within CacheWait", res, err)
	if got := api.calls() - calls; got != 0 {
		t.Errorf("an ensure within CacheWait made %d API calls, want none", got)
	}
	clock.advance(time.Millisecond)
	res, err = e.Ensure(ctx, "demo", "app", false)
	expect(t, "an ensure after CacheWait", res, err)
	if got := api.calls() - calls; got != 7 {
		t.Errorf("an ensure after CacheWait made %d API calls, want 7 (the live list of RoleBindings, then a create and a live read of each object)", got)
	}
}

// TestUncachedEntriesGo: an entry goes once nothing is held and no create
// is under way (so that the informers' events then cost nothing), and
// expired ones are purged as the map grows, so that objects never
// delivered and never asked for again are not kept for ever.
func TestUncachedEntriesGo(t *testing.T) {
	var u uncached
	now := newTestClock().Now()
	var k objectKey
	for i := range 1000 {
		obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: fmt.Sprintf("sa-%d", i), UID: types.UID(fmt.Sprint(i))}}
		k = objectKey{kindServiceAccount, "demo", obj.Name}
		u.begin(k, now)
		u.end(k, obj, time.Second, now)
		if i%2 == 0 {
			u.delivered(k, obj.UID)
		}
		now = now.Add(100 * time.Millisecond)
	}
	u.mu.Lock()
	n := len(u.objects)
	u.mu.Unlock()
	if n > 64 || int(u.size.Load()) != n {
		t.Errorf("%d entries kept (size %d), want at most 64: the 500 delivered dropped, the others purged once expired", n, u.size.Load())
	}
	if got := u.holds(k, now); got != createdHere {
		t.Errorf("the last object created, within its time: %v", got)
	}
	if got := u.holds(k, now.Add(time.Second)); got != missing {
		t.Errorf("an object past its time: %v", got)
	}
}
