package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/token-projector/token-projector/pkg/rbac"
)

// TestInformEnsurer: each informer's events reach the Ensurer as events of
// its kind, so that an object it created and that was deleted before its
// cache showed it is created again by the next admission, and only that
// one.
func TestInformEnsurer(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), metav1.AddMetaToScheme(scheme)); err != nil {
		t.Fatal(err)
	}
	// (Its informers are by Go type: all metadata informers are one.)
	informers := &informertest.FakeInformers{Scheme: scheme}
	var uids atomic.Int32
	api := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			obj.SetUID(types.UID(fmt.Sprint(uids.Add(1)))) // as kube-apiserver, which gives every object its own
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	e := &rbac.Ensurer{
		Cache: fake.NewClientBuilder().Build(), // shows nothing: every object counts only as created here
		Live:  api, Writer: api, CacheWait: time.Hour,
	}
	if err := informEnsurer(informers, e); err != nil {
		t.Fatal(err)
	}
	res, err := e.Ensure(ctx, "demo", "app", false)
	if err != nil || len(res.Created) != 3 {
		t.Fatalf("first ensure: created %v, %v; want all 3", res.Created, err)
	}
	for _, c := range res.Created {
		if err := api.Delete(ctx, c.Object.DeepCopyObject().(client.Object)); err != nil {
			t.Fatal(err)
		}
		informed := c.Object
		if c.Kind == "ServiceAccount" {
			informed = metadataOf("ServiceAccount") // the informer the webhook runs
		}
		informer, err := informers.FakeInformerFor(ctx, informed)
		if err != nil {
			t.Fatal(err)
		}
		informer.Delete(c.Object)
		again, err := e.Ensure(ctx, "demo", "app", false)
		if err != nil || len(again.Created) != 1 || again.Created[0].Kind != c.Kind {
			t.Errorf("after the %s informer delivered its deletion: created %v, %v; want the %s again", c.Kind, again.Created, err, c.Kind)
		}
	}
}
