package reconcile

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/token-projector/token-projector/pkg/rbac"
)

// managedOnly reads as the webhook's cache does: Roles and RoleBindings
// only if labelled as ours (pkg/server's cacheOptions).
type managedOnly struct{ client.Reader }

func (m managedOnly) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := m.Reader.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	resource := map[bool]string{true: "roles", false: "rolebindings"}
	switch obj.(type) {
	case *rbacv1.Role, *rbacv1.RoleBinding:
		if !rbac.IsManaged(obj) {
			_, isRole := obj.(*rbacv1.Role)
			return apierrors.NewNotFound(schema.GroupResource{Group: rbacv1.GroupName, Resource: resource[isRole]}, key.Name)
		}
	}
	return nil
}

// countedWaits counts the waits on the Ensurer's limiter.
type countedWaits struct{ n atomic.Int64 }

func (c *countedWaits) Wait(context.Context) error {
	c.n.Add(1)
	return nil
}

// TestAdoptedIdentityCostsNothingPerPodEvent: a labelled account whose
// owner made its Role and RoleBinding by hand, identical to the webhook's,
// is never complete in the cache (which holds only the webhook's own), so
// every event of a pod running as it asks the Ensurer for a restore. The
// first meets the objects (a live read of the account, a create and a live
// read of each) and the Ensurer remembers them; the events after it are
// answered from that memory: no API call, no limiter token.
func TestAdoptedIdentityCostsNothingPerPodEvent(t *testing.T) {
	const events = 10
	role, rb := rbac.Role("demo", "ci"), rbac.RoleBinding("demo", "ci")
	role.Labels, rb.Labels = nil, nil
	c := fakeClient(optedIn("demo"), labelledAccount("demo", "ci"), role, rb, injectedPod("demo", "ci"))
	var calls atomic.Int64
	api := interceptor.NewClient(c.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			calls.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			calls.Add(1)
			return c.Create(ctx, obj, opts...)
		},
	})
	limiter := &countedWaits{}
	cache := managedOnly{c}
	ens := &rbac.Ensurer{Cache: cache, Live: api, Writer: api, Limiter: limiter, Timeout: time.Minute}
	r := &Reconciler{Cache: cache, Live: api, Writer: api, Ensurer: ens}
	for i := range events {
		if _, err := r.Reconcile(context.Background(), request("demo", "ci")); err != nil {
			t.Fatalf("pod event %d: %v", i, err)
		}
	}
	if got := calls.Load(); got != 5 {
		t.Errorf("%d API calls over %d pod events, want 5, all on the first (the account read live, a create and a live read of the Role and of the RoleBinding)", got, events)
	}
	if got := limiter.n.Load(); got != 5 {
		t.Errorf("%d limiter tokens over %d pod events, want 5", got, events)
	}
	if got := present(t, c, role, rb); got[0] != true || got[1] != true {
		t.Errorf("the hand-made Role and RoleBinding present: %v", got)
	}
}
