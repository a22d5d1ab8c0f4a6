package rbac

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// The API server's side (AlreadyExists, RBAC escalation checks, a real
// cache) is exercised in test/integration, test/faults and test/reconcile;
// these fakes stand in for it in the unit tests.

// gatedAPI is a fake API server that counts the Ensurer's creates and live
// reads, gives each object it creates a UID as kube-apiserver does, and
// whose creates of one kind can be held at a gate.
type gatedAPI struct {
	// WithWatch is the API server as the Ensurer calls it: counted.
	client.WithWatch
	// store is the same objects, for the tests' own reads and writes.
	store client.WithWatch
	// cache reads store as the webhook's informer cache would (selected).
	cache client.Reader

	writes, reads atomic.Int32
	uids          atomic.Int32
	// gate, if set, holds creates of gateKind until it is closed.
	gate     chan struct{}
	gateKind string
	// held is told each time a create is held at the gate.
	held chan string
	// failKind's creates fail as an unavailable API server's would.
	failKind string
	// created, if set, is called with each object created, before the
	// create returns: what the informer may deliver that soon.
	created func(obj client.Object)
}

func newGatedAPI(objs ...client.Object) *gatedAPI {
	g := &gatedAPI{held: make(chan string, 16)}
	g.store = fake.NewClientBuilder().WithObjects(objs...).Build()
	g.cache = selected{g.store}
	g.WithWatch = interceptor.NewClient(g.store, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			kind := kindName(obj)
			if g.gate != nil && kind == g.gateKind {
				g.held <- kind
				select {
				case <-g.gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			g.writes.Add(1)
			if kind == g.failKind {
				return apierrors.NewServiceUnavailable("the API server is unavailable")
			}
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", g.uids.Add(1))))
			if err := c.Create(ctx, obj, opts...); err != nil {
				return err
			}
			if g.created != nil {
				g.created(obj.DeepCopyObject().(client.Object))
			}
			return nil
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			g.reads.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			g.reads.Add(1)
			return c.List(ctx, list, opts...)
		},
	})
	return g
}

// calls is the API calls the Ensurer made.
func (g *gatedAPI) calls() int32 { return g.writes.Load() + g.reads.Load() }

func kindName(obj client.Object) string {
	switch obj.(type) {
	case *corev1.ServiceAccount:
		return "ServiceAccount"
	case *rbacv1.Role:
		return "Role"
	case *rbacv1.RoleBinding:
		return "RoleBinding"
	}
	return "other"
}

func ensurerOn(api *gatedAPI) *Ensurer {
	return &Ensurer{Cache: api.cache, Live: api, Writer: api, Timeout: time.Minute}
}

// selected reads as the webhook's informer cache does (pkg/server's
// cacheOptions): every ServiceAccount, and only the Roles and RoleBindings
// labelled managed-by token-projector, by the informers' label selector;
// any other Role or RoleBinding is not there.
type selected struct{ client.Reader }

func (s selected) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := s.Reader.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	switch obj.(type) {
	case *rbacv1.Role, *rbacv1.RoleBinding:
		if !IsManaged(obj) {
			return apierrors.NewNotFound(schema.GroupResource{Group: rbacv1.GroupName, Resource: kindName(obj)}, key.Name)
		}
	}
	return nil
}

func (s selected) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	switch list.(type) {
	case *rbacv1.RoleList, *rbacv1.RoleBindingList:
		opts = append(opts, client.MatchingLabels{LabelManagedBy: ManagedBy})
	}
	return s.Reader.List(ctx, list, opts...)
}

// TestSelectedIsTheServersSelection: the tests' cache hides, as the
// webhook's does, the Roles and RoleBindings not labelled as ours, and
// nothing else.
func TestSelectedIsTheServersSelection(t *testing.T) {
	ctx := context.Background()
	unowned := Role("demo", "theirs")
	unowned.Labels = nil
	api := newGatedAPI(Role("demo", "ours"), unowned, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "theirs"}})
	if err := api.cache.Get(ctx, client.ObjectKeyFromObject(unowned), &rbacv1.Role{}); !apierrors.IsNotFound(err) {
		t.Errorf("an unlabelled Role: %v, want NotFound", err)
	}
	if err := api.cache.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "theirs"}, serviceAccountMeta()); err != nil {
		t.Errorf("an unlabelled ServiceAccount: %v", err)
	}
	var roles rbacv1.RoleList
	if err := api.cache.List(ctx, &roles); err != nil || len(roles.Items) != 1 || roles.Items[0].Name != Name("ours") {
		t.Errorf("listed %v, %v; want our Role only", roles.Items, err)
	}
}
