package reconcile

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/rbac"
)

// laggingCache is the leader's cache while it has not yet seen any
// RoleBinding created since lag was set.
type laggingCache struct {
	client.Reader
	lag atomic.Bool
}

func (l *laggingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*rbacv1.RoleBinding); ok && l.lag.Load() {
		return apierrors.NewNotFound(schema.GroupResource{Group: rbacv1.GroupName, Resource: "rolebindings"}, key.Name)
	}
	return l.Reader.Get(ctx, key, obj, opts...)
}

// TestCollectionReadsTheRoleBindingLive: between collection's two steps,
// another replica admits a pod for the identity and creates its
// RoleBinding again; the leader's cache has not seen it yet. The second
// step reads the RoleBinding from the API server before it deletes
// anything: the Role and the ServiceAccount stay, and so does the
// RoleBinding.
func TestCollectionReadsTheRoleBindingLive(t *testing.T) {
	ctx := context.Background()
	now := epoch.Add(2 * time.Hour)
	c := fakeClient(append(identity("demo", "busy", epoch), optedIn("demo"))...)
	cache := &laggingCache{Reader: c}
	r := &Reconciler{Cache: cache, Live: c, Writer: c, Ensurer: &recordingEnsurer{}, TTL: time.Hour, CollectGrace: time.Minute, Now: func() time.Time { return now }}
	r.started = epoch
	if _, err := r.Reconcile(ctx, request("demo", "busy")); err != nil {
		t.Fatal(err)
	}
	if got := present(t, c, identity("demo", "busy", epoch)...); !cmp.Equal(got, []bool{true, true, false}) {
		t.Fatalf("first step: present %v, want only the RoleBinding deleted", got)
	}
	cache.lag.Store(true)
	if err := c.Create(ctx, rbac.RoleBinding("demo", "busy")); err != nil { // another replica's admission
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	res, err := r.Reconcile(ctx, request("demo", "busy"))
	if err != nil {
		t.Fatal(err)
	}
	if got := present(t, c, identity("demo", "busy", epoch)...); !cmp.Equal(got, []bool{true, true, true}) {
		t.Errorf("second step with a cache that lags the RoleBinding created again: present %v, want all", got)
	}
	if res.RequeueAfter != r.TTL {
		t.Errorf("second step: %+v, want the TTL started over", res)
	}
}
