package faults

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/token-projector/token-projector/test/testenv"
)

// fault is what the proxy does with one request.
type fault int

const (
	pass   fault = iota // forward it
	hold                // keep it until the caller gives up, never forward it
	refuse              // drop the connection without an answer
)

// faultProxy stands between the webhook and kube-apiserver on 127.0.0.1.
// The webhook speaks plain HTTP to it; it forwards with the webhook user's
// credentials, unless the current rule says to hold or refuse a request.
type faultProxy struct {
	srv   *httptest.Server
	proxy *httputil.ReverseProxy

	mu       sync.Mutex
	rule     func(*http.Request) fault
	inflight map[*http.Request]context.CancelFunc
	// closed releases held requests when the test ends.
	closed chan struct{}
}

func newFaultProxy(t *testing.T) *faultProxy {
	t.Helper()
	target, err := url.Parse(env.WebhookConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(env.WebhookConfig)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{inflight: map[*http.Request]context.CancelFunc{}, closed: make(chan struct{})}
	p.proxy = &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() {
		close(p.closed)
		p.cut()
		p.srv.Close()
	})
	return p
}

// config is a rest.Config for the webhook that goes through the proxy.
func (p *faultProxy) config() *rest.Config {
	return &rest.Config{Host: p.srv.URL, QPS: -1}
}

// set replaces the rule; nil passes everything.
func (p *faultProxy) set(rule func(*http.Request) fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = rule
}

// cut drops every request in flight, watches included, as an API server
// going away does.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cancel := range p.inflight {
		cancel()
	}
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	f := pass
	if p.rule != nil {
		f = p.rule(r)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if f == pass {
		p.inflight[r] = cancel
		defer func() {
			p.mu.Lock()
			delete(p.inflight, r)
			p.mu.Unlock()
		}()
	}
	p.mu.Unlock()

	switch f {
	case hold:
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
	case refuse:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		p.proxy.ServeHTTP(w, r.WithContext(ctx))
	}
}

// creating matches a create of one of the identity's kinds.
func creating(resource string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/"+resource)
	}
}

// TestSlowAPIServerMidEnsure holds the RoleBinding create (the last of the
// three) until the webhook gives up: the pod is refused within the webhook's
// timeoutSeconds with the webhook's own error (not kube-apiserver's timeout),
// the ServiceAccount and Role stay, and the next admission, with the API
// server back, completes the identity with one create.
func TestSlowAPIServerMidEnsure(t *testing.T) {
	proxy := newFaultProxy(t)
	startWebhook(t, serverOptions(t, proxy.config()))
	ctx := context.Background()
	ns := namespace(t)

	proxy.set(func(r *http.Request) fault {
		if creating("rolebindings")(r) {
			return hold
		}
		return pass
	})
	start := time.Now()
	err := env.Admin.Create(ctx, pod(ns, "slowpoke"))
	took := time.Since(start)
	if err == nil {
		t.Fatal("pod admitted while its RoleBinding could not be created")
	}
	if took >= webhookTimeout {
		t.Errorf("answered after %s, not within the webhook's timeoutSeconds (%s)", took, webhookTimeout)
	}
	for _, want := range []string{"ensuring ServiceAccount " + ns + "/slowpoke", "RoleBinding", "deadline"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("kube-apiserver timed out on the webhook instead of getting its answer: %v", err)
	}
	objs := testenv.Identity(ns, "slowpoke")
	if !env.Exists(t, objs[0]) || !env.Exists(t, objs[1]) || env.Exists(t, objs[2]) {
		t.Fatalf("want the ServiceAccount and Role created and the RoleBinding not")
	}

	proxy.set(nil)
	before := testenv.Counter(t, "token_projector_api_writes_total", map[string]string{"result": "created"})
	p := pod(ns, "slowpoke")
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatalf("next admission after the API server recovered: %v", err)
	}
	if !complete(t, ns, "slowpoke") || !testenv.MutatedOnce(p) {
		t.Errorf("identity complete=%v, pod mutated once=%v", complete(t, ns, "slowpoke"), testenv.MutatedOnce(p))
	}
	if got := testenv.Counter(t, "token_projector_api_writes_total", map[string]string{"result": "created"}) - before; got != 1 {
		t.Errorf("repair made %v creates, want 1 (the RoleBinding)", got)
	}
}

// TestAPIServerUnavailableMidEnsure cuts every connection, watches
// included, and refuses new ones: the webhook answers at once with its own
// error; back up, the next admission ensures the identity.
func TestAPIServerUnavailableMidEnsure(t *testing.T) {
	proxy := newFaultProxy(t)
	startWebhook(t, serverOptions(t, proxy.config()))
	ctx := context.Background()
	ns := namespace(t)

	proxy.set(func(*http.Request) fault { return refuse })
	proxy.cut()
	start := time.Now()
	err := env.Admin.Create(ctx, pod(ns, "offline"))
	took := time.Since(start)
	if err == nil {
		t.Fatal("pod admitted while the API server was unreachable")
	}
	if took >= webhookTimeout || !strings.Contains(err.Error(), "ensuring ServiceAccount "+ns+"/offline") {
		t.Errorf("after %s: want the webhook's own error within %s, got %v", took, webhookTimeout, err)
	}
	for _, o := range testenv.Identity(ns, "offline") {
		if env.Exists(t, o) {
			t.Errorf("%T %s created while unreachable", o, o.GetName())
		}
	}

	proxy.set(nil)
	testenv.WaitFor(t, "admission succeeds once the API server is back", 60*time.Second, func() bool {
		return env.Admin.Create(ctx, pod(ns, "offline")) == nil
	})
	if !complete(t, ns, "offline") {
		t.Errorf("identity incomplete after recovery")
	}
}
