package faults

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/test/testenv"
)

// fault is what the proxy does with one request.
type fault int

const (
	pass   fault = iota // forward it
	hold                // keep it until the caller gives up, never forward it
	refuse              // drop the connection without an answer
	delay               // keep it until released, then forward it, unless the caller gives up first
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
	// released lets delayed requests through once closed (release).
	released chan struct{}
	// held counts the requests being held or delayed now.
	held atomic.Int32
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
	p := &faultProxy{inflight: map[*http.Request]context.CancelFunc{}, closed: make(chan struct{}), released: make(chan struct{})}
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

// release forwards every delayed request, now and from then on.
func (p *faultProxy) release() { close(p.released) }

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
	if f == pass || f == delay {
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
		p.held.Add(1)
		defer p.held.Add(-1)
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
	case delay:
		p.held.Add(1)
		select {
		case <-r.Context().Done():
			p.held.Add(-1)
			return
		case <-p.closed:
			p.held.Add(-1)
			return
		case <-p.released:
		}
		p.held.Add(-1)
		p.proxy.ServeHTTP(w, r.WithContext(ctx))
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

// TestAdmissionJoiningASlowRestoreAnswersInTime: the reconciler restores a
// deleted RoleBinding (with its 30 s budget) while the API server holds the
// create; an admission for the same account joins that ensure. It answers
// by its own deadline with the webhook's own error, not kube-apiserver's
// timeout; once the API server is back the identity is restored.
func TestAdmissionJoiningASlowRestoreAnswersInTime(t *testing.T) {
	proxy := newFaultProxy(t)
	startWebhook(t, serverOptions(t, proxy.config()))
	ctx := context.Background()
	ns := namespace(t)
	if err := env.Admin.Create(ctx, pod(ns, "joined")); err != nil {
		t.Fatal(err)
	}

	proxy.set(func(r *http.Request) fault {
		if creating("rolebindings")(r) {
			return hold
		}
		return pass
	})
	if err := env.Admin.Delete(ctx, testenv.Identity(ns, "joined")[2]); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the reconciler's restore is held at the RoleBinding create", 30*time.Second, func() bool { return proxy.held.Load() > 0 })

	err := env.Admin.Create(ctx, pod(ns, "joined"))
	if err == nil {
		t.Fatal("pod admitted while its RoleBinding could not be created")
	}
	for _, want := range []string{"ensuring ServiceAccount " + ns + "/joined", "RoleBinding " + ns + "/joined-create-token", "deadline"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("kube-apiserver timed out on the webhook instead of getting its answer: %v", err)
	}

	proxy.set(nil)
	testenv.WaitFor(t, "the reconciler restores the RoleBinding", 60*time.Second, func() bool { return complete(t, ns, "joined") })
}

// TestCancelledLeaderDoesNotFailWaiters: the request that started an ensure
// for a new account is cancelled while its RoleBinding create is delayed;
// another admission waiting on that ensure is admitted once the create goes
// through, and the account took 3 writes.
func TestCancelledLeaderDoesNotFailWaiters(t *testing.T) {
	proxy := newFaultProxy(t)
	startWebhook(t, serverOptions(t, proxy.config()))
	ctx := context.Background()
	ns := namespace(t)
	writes := func() float64 { return testenv.Counter(t, "token_projector_api_writes_total", nil) }
	before, admitting := writes(), inFlight(t)

	proxy.set(func(r *http.Request) fault {
		if creating("rolebindings")(r) {
			return delay
		}
		return pass
	})
	leaderCtx, cancelLeader := context.WithCancel(ctx)
	defer cancelLeader()
	leader := make(chan error, 1)
	go func() { leader <- env.Admin.Create(leaderCtx, pod(ns, "shared")) }()
	testenv.WaitFor(t, "the leader's RoleBinding create is delayed", 30*time.Second, func() bool { return proxy.held.Load() == 1 })

	waiter := pod(ns, "shared")
	waiterErr := make(chan error, 1)
	go func() { waiterErr <- env.Admin.Create(ctx, waiter) }()
	testenv.WaitFor(t, "both admissions are in the webhook", 30*time.Second, func() bool { return inFlight(t) == admitting+2 })

	cancelLeader()
	if err := <-leader; err == nil {
		t.Fatal("the cancelled leader's pod was created")
	}
	testenv.WaitFor(t, "the leader's admission has ended in the webhook", 30*time.Second, func() bool { return inFlight(t) <= admitting+1 })
	proxy.release()

	if err := <-waiterErr; err != nil {
		t.Fatalf("the waiter failed with its cancelled leader: %v", err)
	}
	if !testenv.MutatedOnce(waiter) || !complete(t, ns, "shared") {
		t.Errorf("waiter mutated once=%v, identity complete=%v", testenv.MutatedOnce(waiter), complete(t, ns, "shared"))
	}
	if got := writes() - before; got != 3 {
		t.Errorf("API writes for the account: %v, want 3", got)
	}
}

// inFlight is how many pod admissions the in-process webhook is serving.
func inFlight(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_in_flight" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" && l.GetValue() == admission.PodsPath {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}
