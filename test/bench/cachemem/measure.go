// Package cachemem measures the memory the webhook's informer caches hold at
// scale: the real cache configuration of pkg/server (metadata-only watches,
// label selectors, transforms, the Bindings cache and its index), filled
// from a synthetic API server with as many Namespaces, ServiceAccounts,
// pods, Roles, RoleBindings and ClusterRoleBindings as asked for.
// Creating 300 000 objects in a test kube-apiserver would take longer than
// the whole benchmark may; what reaches the cache is the same either way:
// JSON list pages or watch-list streams of objects as kube-apiserver sends
// them.
package cachemem

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/server"
)

// Result is what the caches of one Shape hold.
type Result struct {
	Shape Shape
	// Cached counts the objects in the caches by kind.
	Cached map[string]int
	// HeapBytes is the growth of the live heap (after a full GC) from the
	// declared, empty caches to the synced ones.
	HeapBytes int64
	// RSSBytes is the growth of the resident set over the same span, after
	// returning freed memory to the OS.
	RSSBytes int64
	// Sync is how long the caches took to fill.
	Sync time.Duration
	// Kept says what of a cached ServiceAccount is left after the
	// transforms: the non-empty metadata fields.
	Kept []string
	// Requests are the API requests the caches made, by "verb path".
	Requests map[string]int
}

// Measure builds the webhook's manager against a synthetic API server of
// shape, starts its caches, waits for them to sync and measures them.
// If heapProfile is not nil, it receives a heap profile of the synced caches.
func Measure(ctx context.Context, shape Shape, heapProfile io.Writer) (Result, error) {
	api := newAPIServer(shape)
	srv := httptest.NewServer(api)
	defer srv.Close()

	o := server.DefaultOptions()
	o.RestConfig = &rest.Config{Host: srv.URL, QPS: -1}
	o.MetricsBindAddress, o.HealthProbeBindAddress = "0", "0"
	o.CertDir = os.TempDir() // the webhook server is never started
	_, caches, err := server.NewManagerCaches(o)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	heap0, rss0 := settle()

	errc := make(chan error, len(caches))
	began := time.Now()
	for _, c := range caches {
		go func() { errc <- c.Start(ctx) }()
	}
	for _, c := range caches {
		if !c.WaitForCacheSync(ctx) {
			cancel()
			err := <-errc
			api.mu.Lock()
			defer api.mu.Unlock()
			return Result{}, fmt.Errorf("caches did not sync (requests not served: %v): %w", api.unexpected, err)
		}
	}
	res := Result{Shape: shape, Sync: time.Since(began)}
	heap1, rss1 := settle()
	res.HeapBytes, res.RSSBytes = heap1-heap0, rss1-rss0
	if heapProfile != nil {
		if err := pprof.Lookup("heap").WriteTo(heapProfile, 0); err != nil {
			return res, err
		}
	}

	if res.Cached, res.Kept, err = inspect(ctx, caches[0]); err != nil {
		return res, err
	}
	if err := inspectBindings(ctx, caches[1], res.Cached); err != nil {
		return res, err
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.unexpected) > 0 {
		return res, fmt.Errorf("the caches made requests the synthetic API server does not serve: %v", api.unexpected)
	}
	res.Requests = api.requests
	return res, nil
}

// settle collects all garbage, returns it to the OS and reads the live heap
// and the resident set.
func settle() (heap, rss int64) {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), residentSet()
}

func residentSet() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n * 1024
		}
	}
	return 0
}

// inspect counts the cached objects (without copying them) and reports
// which metadata fields a cached ServiceAccount kept.
func inspect(ctx context.Context, c client.Reader) (map[string]int, []string, error) {
	counts := map[string]int{}
	var kept []string
	for _, kind := range []string{"Namespace", "ServiceAccount"} {
		l := &metav1.PartialObjectMetadataList{}
		l.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind + "List"))
		if err := c.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return nil, nil, err
		}
		counts[kind] = len(l.Items)
		if kind == "ServiceAccount" {
			for i := range l.Items {
				if l.Items[i].Labels != nil || i == len(l.Items)-1 {
					kept = nonEmpty(&l.Items[i].ObjectMeta)
					break
				}
			}
		}
	}
	roles := &rbacv1.RoleList{}
	if err := c.List(ctx, roles, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	bindings := &rbacv1.RoleBindingList{}
	if err := c.List(ctx, bindings, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	counts["Role"], counts["RoleBinding"] = len(roles.Items), len(bindings.Items)
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	counts["Pod"] = len(pods.Items)
	return counts, kept, nil
}

// inspectBindings counts what the Bindings cache holds: the RoleBindings
// not the webhook's, and the ClusterRoleBindings.
func inspectBindings(ctx context.Context, c client.Reader, counts map[string]int) error {
	rbs := &rbacv1.RoleBindingList{}
	if err := c.List(ctx, rbs, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	crbs := &rbacv1.ClusterRoleBindingList{}
	if err := c.List(ctx, crbs, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	counts["OtherRoleBinding"], counts["ClusterRoleBinding"] = len(rbs.Items), len(crbs.Items)
	return nil
}

func nonEmpty(m *metav1.ObjectMeta) []string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	add("name", m.Name != "")
	add("namespace", m.Namespace != "")
	add("uid", m.UID != "")
	add("resourceVersion", m.ResourceVersion != "")
	add("creationTimestamp", !m.CreationTimestamp.IsZero())
	add("labels", len(m.Labels) > 0)
	add("annotations", len(m.Annotations) > 0)
	add("managedFields", len(m.ManagedFields) > 0)
	add("ownerReferences", len(m.OwnerReferences) > 0)
	return out
}
