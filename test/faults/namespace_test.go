package faults

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/token-projector/token-projector/test/testenv"
)

// TestNamespaceCacheBehind freezes the webhook's namespace cache (its
// namespace list and watch are cut and held at the proxy, so it never sees a
// new namespace) and creates a labelled namespace with an annotated pod. The
// pod is mutated: the webhook confirms the cache's "not opted in" with a read
// of that namespace. The old code admitted it without its token. With that
// read held too, the pod is refused with the webhook's own error naming the
// namespace, rather than admitted without its token.
func TestNamespaceCacheBehind(t *testing.T) {
	proxy := newFaultProxy(t)
	startWebhook(t, serverOptions(t, proxy.config()))
	ctx := context.Background()
	namespaceCollection := func(r *http.Request) bool { return r.URL.Path == "/api/v1/namespaces" } // list and watch
	proxy.set(func(r *http.Request) fault {
		if namespaceCollection(r) {
			return hold
		}
		return pass
	})
	proxy.cut() // the informers reconnect; the namespace one is held

	result := map[string]string{"result": "opted-in"}
	before := testenv.Counter(t, "token_projector_namespace_live_reads_total", result)
	ns := fmt.Sprintf("behind-%d", nsCounter.Add(1))
	if err := env.CreateNamespace(ctx, ns, testenv.OptedIn()); err != nil {
		t.Fatal(err)
	}
	p := pod(ns, "")
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatalf("pod in a namespace the cache has not seen: %v", err)
	}
	if !testenv.MutatedOnce(p) {
		t.Fatalf("pod in a labelled namespace the cache has not seen was admitted without its token: %v", p.Spec.Volumes)
	}
	if got := testenv.Counter(t, "token_projector_namespace_live_reads_total", result) - before; got != 1 {
		t.Errorf("%v live reads found the namespace opted in, want 1", got)
	}

	// The live read cannot answer either: the webhook fails the admission
	// (kube-apiserver already saw the label), within the deadline.
	proxy.set(func(r *http.Request) fault {
		if namespaceCollection(r) || strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/"+ns+"2") {
			return hold
		}
		return pass
	})
	ns2 := ns + "2"
	if err := env.CreateNamespace(ctx, ns2, testenv.OptedIn()); err != nil {
		t.Fatal(err)
	}
	err := env.Admin.Create(ctx, pod(ns2, ""))
	if err == nil {
		t.Fatal("pod admitted although opt-in could be read neither from the cache nor from the API server")
	}
	for _, want := range []string{"namespace " + ns2 + " is not labelled", "reading it from the API server to confirm failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("kube-apiserver timed out on the webhook instead of getting its answer: %v", err)
	}
}
