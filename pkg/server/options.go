// Package server assembles the webhook process: a controller-runtime manager
// with the webhook server, the informer caches the handler reads, metrics and
// health probes. cmd/webhook binds flags to Options and calls Run; the tests
// and the local development environment call Run in-process.
package server

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/reconcile"
)

// Options configures the webhook process. Every field but RestConfig is a
// command-line flag; DefaultOptions gives the documented defaults.
type Options struct {
	// Kubeconfig is a kubeconfig file; empty means KUBECONFIG, then in-cluster.
	Kubeconfig string
	// CertDir holds the serving certificate, tls.crt and tls.key; they are
	// reloaded when they change (cert-manager renews them in place).
	CertDir string
	// WebhookHost is the address the webhook server binds to; empty is all.
	WebhookHost string
	// WebhookPort is the webhook server's HTTPS port: 10250 by default, the
	// port GKE private clusters' control-plane firewall allows besides 443.
	// In a pod's own network namespace it does not clash with the kubelet's.
	WebhookPort int
	// MetricsBindAddress serves Prometheus metrics; "0" disables it.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; "0" disables it.
	HealthProbeBindAddress string
	// PprofBindAddress serves net/http/pprof, for profiling; "0" (the
	// default) disables it. Bind it to a loopback address only.
	PprofBindAddress string
	// MaxExpiration is the longest token lifetime a pod may ask for.
	MaxExpiration time.Duration
	// DefaultExpiration applies to pods that give no expiration.
	DefaultExpiration time.Duration
	// AllowedAudiences, if set, are the only audiences pods may request:
	// path.Match globs matched against the whole audience, where '*' does
	// not cross '/' (*.example.com allows sts.example.com, not
	// https://sts.example.com/aws; https://sts.example.com/* allows that).
	AllowedAudiences []string
	// EnsureTimeout bounds the creation of a ServiceAccount and its RBAC on
	// admission. Keep it below the webhook's timeoutSeconds, so that a slow
	// API server gives the author a clear error rather than a timeout.
	EnsureTimeout time.Duration
	// APIQPS and APIBurst bound the API requests the Ensurer makes for
	// admissions and the reconciler's restores (creating ServiceAccounts,
	// Roles and RoleBindings, and reading one live when its create meets it
	// or a restore is about to grant): one token bucket of APIBurst,
	// refilled at APIQPS a second, per replica. A request that gets no
	// token within its admission's deadline fails the admission (500),
	// never skips it. The warm path makes no request, and Events go through
	// another client, unlimited. The defaults cover the largest legitimate
	// bursts measured: make bench's cold path (150 new accounts at
	// concurrency 64, 450 creates at about 250 a second) fits in the burst,
	// and make load's long run (1 000 new accounts from 64 clients, 3 000
	// creates at about that pace) never drains it at 200 a second.
	APIQPS   float64
	APIBurst int
	// NamespaceReadQPS and NamespaceReadBurst bound the live reads that
	// confirm a namespace the cache does not show as opted in: a bucket of
	// their own, apart from APIQPS/APIBurst, per replica. Without ClientCA,
	// anyone who reaches the webhook port can send reviews naming such
	// namespaces, each costing a read; with one shared bucket a flood of
	// them made every real admission that needs a create fail with 500. Now
	// such a flood spends this bucket only: it can fail admissions whose
	// namespace the cache has not yet seen labelled (a moment after the
	// label; they fail with 500 and their controllers retry, never skip
	// injection), never a create for a namespace the cache shows opted in.
	// Concurrent reviews of one namespace share one read, so legitimate
	// traffic costs about one read per freshly labelled namespace.
	NamespaceReadQPS   float64
	NamespaceReadBurst int
	// Namespaces, if set, restricts the webhook's caches to these namespaces:
	// the namespaced RBAC scope, where it may not list cluster-wide.
	Namespaces []string
	// DrainDelay is how long the webhook keeps serving after SIGTERM, with
	// /readyz failing, before it stops accepting: the time kube-apiserver
	// takes to stop sending to a terminating replica. Zero (the default, for
	// tests and development) stops at once; the chart and config/ set 10s.
	DrainDelay time.Duration
	// ShutdownTimeout bounds the graceful shutdown after the drain delay:
	// in-flight admissions finish, new connections are refused.
	ShutdownTimeout time.Duration
	// GCTTL, when positive, deletes managed ServiceAccounts, Roles and
	// RoleBindings that no pod or workload has named for this long (objects
	// left by pods a later admission step rejected). Zero (the default)
	// disables it. It needs the token-projector-gc ClusterRole.
	GCTTL time.Duration
	// GCGrace is how long garbage collection waits between deleting an
	// unused identity's RoleBinding and deleting its Role and
	// ServiceAccount. Any replica that admits a pod for the identity
	// meanwhile creates the RoleBinding again, which stops the collection:
	// that is how admissions served by replicas other than the leader reach
	// it. It must exceed the time from an admission to the pod's storage
	// (kube-apiserver's request timeout, 60s by default).
	GCGrace time.Duration
	// ClientCA, if set, is a PEM bundle: callers of the webhook port must
	// present a client certificate it signed (kube-apiserver does, once given
	// one through its admission configuration). Reloaded when it changes.
	ClientCA string
	// LeaderElection runs the reconciler (restoring identities and, with
	// GCTTL, collecting them) on one replica only, elected through a Lease
	// in LeaderElectionNamespace. The webhook server serves admissions on
	// every replica either way. Off by default, for a single process
	// outside a cluster (tests, make run); the chart and config/manager
	// turn it on.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease; empty means the namespace
	// the webhook's pod runs in (the release namespace).
	LeaderElectionNamespace string
	// LeaderElectionID names the Lease: one per release, so that two
	// releases in one namespace elect their reconcilers apart. The chart
	// passes <fullname>-reconciler; the default is the name config/ uses.
	LeaderElectionID string
	// TokenPolicyConfigMap names the token policy's parameter, a ConfigMap
	// in the webhook's own namespace: at start-up the webhook records the
	// API server's audiences there (config/tokenpolicy). Empty (the
	// default, for tests and development) records nothing; the chart and
	// config/manager pass the ConfigMap they install.
	TokenPolicyConfigMap string
	// EnableHTTP2 serves HTTP/2 on the webhook port. Off by default, as in
	// kubebuilder, so that HTTP/2 stream attacks (CVE-2023-44487) from the
	// pod network do not apply.
	EnableHTTP2 bool

	// RestConfig, when set, is used instead of Kubeconfig (tests, embedding).
	RestConfig *rest.Config `json:"-"`
}

// DefaultOptions returns the options of a webhook started without flags.
func DefaultOptions() Options {
	return Options{
		CertDir:                "/tmp/k8s-webhook-server/serving-certs",
		WebhookPort:            10250,
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",
		PprofBindAddress:       "0",
		MaxExpiration:          mutate.DefaultMaxExpiration,
		DefaultExpiration:      mutate.DefaultExpiration,
		EnsureTimeout:          3 * time.Second,
		APIQPS:                 200,
		APIBurst:               1000,
		NamespaceReadQPS:       50,
		NamespaceReadBurst:     200,
		ShutdownTimeout:        15 * time.Second,
		GCGrace:                reconcile.DefaultCollectGrace,
		LeaderElectionID:       DefaultLeaderElectionID,
	}
}

// DefaultLeaderElectionID names the Lease the replicas elect the reconciler
// by, unless --leader-election-id names another.
const DefaultLeaderElectionID = "token-projector-reconciler"

// BindFlags registers a flag for every option, defaulting to the current value.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig file. Default: $KUBECONFIG, then the in-cluster configuration.")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "Directory holding the serving certificate tls.crt and key tls.key; reloaded when they change.")
	fs.StringVar(&o.WebhookHost, "webhook-host", o.WebhookHost, "Address the webhook server binds to; empty means all addresses.")
	fs.IntVar(&o.WebhookPort, "webhook-port", o.WebhookPort, "Port of the webhook's HTTPS server.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "Address of /healthz and /readyz; 0 disables them.")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", o.PprofBindAddress, "Address of the net/http/pprof profiling endpoints; 0 disables them. Loopback only: profiles reveal memory contents.")
	o.BindPolicyFlags(fs)
	fs.DurationVar(&o.EnsureTimeout, "ensure-timeout", o.EnsureTimeout, "Deadline of each admission, from its start: a third of it at most for the live read of a namespace the cache says is not opted in, the rest for creating the ServiceAccount and its RBAC. Keep it below the webhook's timeoutSeconds.")
	fs.Float64Var(&o.APIQPS, "api-qps", o.APIQPS, "API requests a second that admissions and restores may make creating ServiceAccounts, Roles and RoleBindings (and reading one live), refilling a bucket of --api-burst; a request that gets none within its admission's deadline fails the admission (500). The warm path makes none. Live namespace reads have their own, --namespace-read-qps.")
	fs.IntVar(&o.APIBurst, "api-burst", o.APIBurst, "API requests admissions may make at once before --api-qps paces them. The default covers over 300 new ServiceAccounts at once (3 creates each).")
	fs.Float64Var(&o.NamespaceReadQPS, "namespace-read-qps", o.NamespaceReadQPS, "Live reads a second of namespaces the cache does not show as opted in (forged reviews can cost them), refilling a bucket of --namespace-read-burst apart from --api-qps's, so that a flood of them never starves creates; a read that gets none within its share of the admission's deadline fails the admission (500), never skips it.")
	fs.IntVar(&o.NamespaceReadBurst, "namespace-read-burst", o.NamespaceReadBurst, "Live namespace reads admissions may make at once before --namespace-read-qps paces them (one per freshly labelled namespace: concurrent reviews of one namespace share a read).")
	fs.Func("namespaces", "Comma-separated namespaces the webhook may serve (namespaced RBAC scope); empty means all.", func(s string) error {
		o.Namespaces = splitList(s)
		return nil
	})
	fs.DurationVar(&o.DrainDelay, "drain-delay", o.DrainDelay, "How long to keep serving after SIGTERM, with /readyz failing, before shutting down: the time kube-apiserver takes to stop sending to this replica. The pod's terminationGracePeriodSeconds must exceed drain-delay + shutdown-timeout.")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "How long in-flight admissions may take to finish on shutdown, after the drain delay.")
	fs.DurationVar(&o.GCTTL, "gc-ttl", o.GCTTL, "Delete managed ServiceAccounts, Roles and RoleBindings no pod or workload has named for this long; 0 disables. Needs the token-projector-gc ClusterRole.")
	fs.DurationVar(&o.GCGrace, "gc-grace", o.GCGrace, "With --gc-ttl: how long to wait between deleting an unused identity's RoleBinding and deleting its Role and ServiceAccount; an admission on any replica meanwhile re-creates the RoleBinding and stops the collection. Must exceed the time a pod takes from admission to storage.")
	fs.StringVar(&o.ClientCA, "client-ca", o.ClientCA, "PEM file of the CA that signs the client certificates callers must present (kube-apiserver's); empty accepts any caller. Reloaded when it changes.")
	fs.BoolVar(&o.LeaderElection, "leader-elect", o.LeaderElection, "Run the reconciler (restore, garbage collection) on one elected replica only, through the Lease --leader-election-id; every replica serves admissions.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "Namespace of the leader-election Lease; empty means the webhook pod's own namespace.")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "Name of the leader-election Lease; one per release, so that releases sharing a namespace elect apart (the chart passes <fullname>-reconciler).")
	fs.StringVar(&o.TokenPolicyConfigMap, "token-policy-configmap", o.TokenPolicyConfigMap, "ConfigMap, in the webhook's own namespace, where it records the API server's audiences at start-up for the token policy (the ValidatingAdmissionPolicy the chart installs); empty records nothing.")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", o.EnableHTTP2, "Serve HTTP/2 on the webhook port (off: HTTP/1.1 only).")
}

// BindPolicyFlags registers the flags that bound what pods may ask for; the
// offline inject command shares them, so its output matches the webhook's.
func (o *Options) BindPolicyFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.MaxExpiration, "max-expiration", o.MaxExpiration, "Longest token lifetime a pod may request.")
	fs.DurationVar(&o.DefaultExpiration, "default-expiration", o.DefaultExpiration, "Token lifetime of pods that do not set "+mutate.AnnotationExpiration+".")
	fs.Func("allowed-audiences", "Comma-separated globs of the audiences pods may request; empty allows all. Each must match the whole audience (path.Match: '*' matches any characters but '/'): *.example.com allows sts.example.com but not https://sts.example.com/aws; https://sts.example.com/* allows https://sts.example.com/aws. '?' (one character) and '[' (a class) are pattern characters too: write \\? and \\[ for literal ones, as in https://sts.example.com/aws\\?region=eu.", func(s string) error {
		o.AllowedAudiences = splitList(s)
		return nil
	})
}

// Validate rejects options the webhook cannot start with.
func (o *Options) Validate() error {
	if err := o.MutateConfig().Validate(); err != nil {
		return err
	}
	if o.WebhookPort <= 0 || o.WebhookPort > 65535 {
		return fmt.Errorf("webhook port %d is out of range", o.WebhookPort)
	}
	if o.EnsureTimeout <= 0 {
		return fmt.Errorf("ensure timeout must be positive, got %s", o.EnsureTimeout)
	}
	if !(o.APIQPS > 0) || o.APIBurst < 1 {
		return fmt.Errorf("api qps must be positive and api burst at least 1, got %v and %d", o.APIQPS, o.APIBurst)
	}
	if !(o.NamespaceReadQPS > 0) || o.NamespaceReadBurst < 1 {
		return fmt.Errorf("namespace read qps must be positive and namespace read burst at least 1, got %v and %d", o.NamespaceReadQPS, o.NamespaceReadBurst)
	}
	if o.DrainDelay < 0 || o.ShutdownTimeout < 0 {
		return fmt.Errorf("drain delay and shutdown timeout must not be negative, got %s and %s", o.DrainDelay, o.ShutdownTimeout)
	}
	if o.GCTTL < 0 || o.GCGrace < 0 {
		return fmt.Errorf("gc ttl and gc grace must not be negative, got %s and %s", o.GCTTL, o.GCGrace)
	}
	return nil
}

// MutateConfig is the part of the options that bounds what pods may ask for.
func (o *Options) MutateConfig() mutate.Config {
	return mutate.Config{DefaultExpiration: o.DefaultExpiration, MaxExpiration: o.MaxExpiration, AllowedAudiences: o.AllowedAudiences}
}

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}
