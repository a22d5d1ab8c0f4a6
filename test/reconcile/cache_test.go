package reconcile

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

// TestCachesOnlyInjectedPods: the webhook's pod cache, as pkg/server
// configures it, holds a pod the webhook injected (and labelled through
// kube-apiserver) and not one it left alone, in the same opted-in namespace.
// The skipped pod is created first: the cache receives pods in the order
// they were written, so once the injected one is there, the other would be
// too if the cache took it.
func TestCachesOnlyInjectedPods(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := namespace(t)
	skipped := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "skipped"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
	injected := pod(ns, "injected", "")
	for _, p := range []*corev1.Pod{skipped, injected} {
		if err := env.Admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if injected.Labels[mutate.LabelInjected] != mutate.InjectedTrue || skipped.Labels[mutate.LabelInjected] != "" {
		t.Fatalf("labels as stored: injected pod %v, skipped pod %v", injected.Labels, skipped.Labels)
	}

	opts, err := env.ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.GCTTL = ttl
	mgr, err := server.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	cache := mgr.GetCache()
	go func() { _ = cache.Start(ctx) }()
	if !cache.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	cached := func() map[string]bool {
		var pods corev1.PodList
		if err := cache.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, p := range pods.Items {
			names[p.Name] = true
		}
		return names
	}
	testenv.WaitFor(t, "the injected pod is cached", 30*time.Second, func() bool { return cached()["injected"] })
	if got := cached(); got["skipped"] {
		t.Errorf("the pod the webhook skipped is cached: %v", got)
	}
}
