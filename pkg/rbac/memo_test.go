package rbac

import (
	"context"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// countingCache counts the reads of the cache it wraps.
type countingCache struct {
	client.Reader
	gets atomic.Int32
}

func (c *countingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets.Add(1)
	return c.Reader.Get(ctx, key, obj, opts...)
}

// TestWarmMemo: once the handlers of the three kinds are asked for, the
// warm path reads the cache once per account until an event of an object
// in its namespace, then reads it again and answers as the cache now says;
// events elsewhere change nothing; answers drawn from objects the cache
// did not show are not kept; without the handlers every answer reads.
func TestWarmMemo(t *testing.T) {
	const ns = "demo"
	ctx := context.Background()
	labelled := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	api := newGatedAPI(labelled, Role(ns, "app"), RoleBinding(ns, "app"), ServiceAccount("other", "app"), Role("other", "app"), RoleBinding("other", "app"))
	cache := &countingCache{Reader: api.cache}
	e := ensurerOn(api)
	e.Cache = cache
	ensure := func(what string, namespace string, wantReads int32, wantRBAC bool) {
		t.Helper()
		before := cache.gets.Load()
		res, err := e.Ensure(ctx, namespace, "app", false)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := cache.gets.Load() - before; got != wantReads {
			t.Errorf("%s: %d cache reads, want %d", what, got, wantReads)
		}
		if res.RBAC != wantRBAC {
			t.Errorf("%s: RBAC %v, want %v", what, res.RBAC, wantRBAC)
		}
	}

	ensure("without the handlers", ns, 3, true)
	ensure("without the handlers, again", ns, 3, true)

	events := map[string]toolscache.ResourceEventHandler{}
	for _, kind := range []string{kindServiceAccount, kindRole} {
		events[kind] = e.CacheEventHandler(kind)
	}
	ensure("with two handlers of three", ns, 3, true)
	events[kindRoleBinding] = e.CacheEventHandler(kindRoleBinding)

	ensure("first with the handlers", ns, 3, true)
	before := counts(t)
	ensure("from the memo", ns, 0, true)
	if d := delta(before, counts(t)); len(d) != 3 || d["ensures kind=ServiceAccount result=cached"] != 1 ||
		d["ensures kind=Role result=cached"] != 1 || d["ensures kind=RoleBinding result=cached"] != 1 {
		t.Errorf("a memo answer counted %v, want what a cache answer counts", d)
	}
	ensure("first in another namespace", "other", 3, true)
	ensure("from the memo in another namespace", "other", 0, true)

	// The owner takes the label off: the cache shows it, then the event.
	unlabelled := labelled.DeepCopy()
	unlabelled.Labels = nil
	if err := api.store.Update(ctx, unlabelled); err != nil {
		t.Fatal(err)
	}
	ensure("changed in the cache, no event yet", ns, 0, true)
	events[kindServiceAccount].OnUpdate(labelled, unlabelled)
	ensure("after the event", ns, 1, false)
	ensure("unlabelled, from the memo", ns, 0, false)
	ensure("the other namespace, untouched", "other", 0, true)

	// A tombstone of a Role empties its namespace's memo as well.
	events[kindRole].OnDelete(toolscache.DeletedFinalStateUnknown{Key: "other/app-create-token", Obj: Role("other", "app")})
	ensure("after a tombstone", "other", 3, true)
	events[kindRoleBinding].OnDelete(toolscache.DeletedFinalStateUnknown{Key: "other/app-create-token"})
	ensure("after a tombstone without its object", "other", 3, true)
}

// TestWarmMemoKeepsOnlyTheCaches: an identity the Ensurer created, which
// the cache has not shown yet, is answered from uncached every time, never
// kept: its hold ends with an event or CacheWait.
func TestWarmMemoKeepsOnlyTheCaches(t *testing.T) {
	api := newGatedAPI()
	e, _ := lagging(api)
	cache := &countingCache{Reader: e.Cache}
	e.Cache = cache
	ctx := context.Background()
	if _, err := e.Ensure(ctx, "demo", "app", false); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		before := cache.gets.Load()
		if _, ok := e.warm(ctx, "demo", "app"); !ok {
			t.Fatalf("warm %d: declined what was created here", i)
		}
		if got := cache.gets.Load() - before; got != 3 {
			t.Fatalf("warm %d: %d cache reads, want 3 (nothing kept)", i, got)
		}
	}
}
