package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tpadmission "github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/pkg/reconcile"
)

const (
	// cacheWait bounds how long an object the webhook created counts as
	// present while the caches catch up with it (off every answer's
	// critical path: see rbac.Ensurer); the informer's first event of it
	// ends that sooner (informEnsurer).
	cacheWait = time.Second
	// eventSource is the reporting controller of the webhook's Events.
	eventSource = "token-projector"
)

// Run starts the webhook and blocks until it fails, or until ctx is
// cancelled and the drain (see drain) is over.
func Run(ctx context.Context, o Options) error {
	d := newDrain()
	mgr, _, err := newManager(o, d)
	if err != nil {
		return err
	}
	logf.FromContext(ctx).Info("Starting webhook", "port", o.WebhookPort, "certDir", o.CertDir, "namespaces", o.Namespaces)
	return d.run(ctx, o.DrainDelay, mgr.Start)
}

// NewManager builds the manager with the pod webhook registered, its caches
// declared (so that readiness waits for them) and its probes installed.
func NewManager(o Options) (ctrl.Manager, error) {
	mgr, _, err := newManager(o, newDrain())
	return mgr, err
}

// NewManagerCaches is NewManager that also returns every cache the manager
// runs (its own, then the Bindings cache), for a measurement that starts
// and reads them without the rest of the manager (test/bench/cachemem).
func NewManagerCaches(o Options) (ctrl.Manager, []cache.Cache, error) {
	return newManager(o, newDrain())
}

func newManager(o Options, d *drain) (ctrl.Manager, []cache.Cache, error) {
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	cfg, err := restConfig(o)
	if err != nil {
		return nil, nil, err
	}
	// client-go's own scheme, which its import builds anyway: a copy of
	// it was 170 KB of heap that the garbage collector's target doubles.
	scheme := clientgoscheme.Scheme
	tlsOpts, err := tlsOptions(o)
	if err != nil {
		return nil, nil, err
	}
	mgr, err := ctrl.NewManager(cfg, managerOptions(o, scheme, tlsOpts))
	if err != nil {
		return nil, nil, fmt.Errorf("creating manager: %w", err)
	}
	// Declare every informer the handler reads now, so that they start with
	// the manager and /readyz can wait for them to sync.
	for _, obj := range append(cachedObjects(), reconcile.CachedObjects(o.GCTTL > 0)...) {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj); err != nil {
			return nil, nil, fmt.Errorf("declaring informer for %T: %w", obj, err)
		}
	}

	bindings, err := newBindingsCache(mgr)
	if err != nil {
		return nil, nil, err
	}

	limits := newLimiters(o)
	ensurer := &rbac.Ensurer{
		Cache: mgr.GetCache(), Live: mgr.GetAPIReader(), Writer: mgr.GetClient(), Bindings: bindings,
		Limiter: limits.api, // its creates and live reads: a cold admission's, and the reconciler's restores
		Timeout: o.EnsureTimeout, CacheWait: cacheWait,
	}
	if err := setupReconciler(mgr, o, ensurer); err != nil {
		return nil, nil, err
	}
	if err := informEnsurer(mgr.GetCache(), ensurer); err != nil {
		return nil, nil, err
	}
	handler := &tpadmission.PodHandler{
		Config:         o.MutateConfig(),
		Namespaces:     mgr.GetCache(),
		LiveNamespaces: mgr.GetAPIReader(),
		// A bucket apart from the Ensurer's: forged reviews can spend it, and
		// must not starve creates by spending it.
		NamespaceReadLimiter: limits.namespaceReads,
		Ensurer:              ensurer,
		EnsureTimeout:        o.EnsureTimeout,
		Recorder:             mgr.GetEventRecorder(eventSource),
		ServedNamespaces:     o.Namespaces,
	}
	// Lean: admission.Webhook's answers for less CPU (see there); the
	// webhook server adds its controller_runtime_webhook_* metrics around it.
	mgr.GetWebhookServer().Register(tpadmission.PodsPath, d.closing(tpadmission.Lean(&admission.Webhook{Handler: handler})))
	mgr.GetWebhookServer().Register(tpadmission.WorkloadsPath, d.closing(tpadmission.Lean(&admission.Webhook{Handler: &tpadmission.WorkloadHandler{PodHandler: handler}})))

	if err := addAPIAudiencesRecorder(mgr, o); err != nil {
		return nil, nil, err
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("webhook-serving", servingChecker(mgr.GetWebhookServer(), o)); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("caches-synced", cachesSynced(mgr.GetCache(), bindings)); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("not-draining", d.checker()); err != nil {
		return nil, nil, err
	}
	return mgr, []cache.Cache{mgr.GetCache(), bindings}, nil
}

// managerOptions are the manager's options for o.
func managerOptions(o Options, scheme *runtime.Scheme, tlsOpts []func(*tls.Config)) ctrl.Options {
	return ctrl.Options{
		Scheme: scheme,
		Cache:  cacheOptions(o),
		Metrics: metricsserver.Options{BindAddress: o.MetricsBindAddress, HandlerOpts: []func(*promhttp.HandlerOpts){
			// Uncompressed: a scrape compressed with gzip takes a 1.6 MiB
			// compressor, kept until the garbage collector's second cycle
			// after it (a third of the webhook's heap at rest); a scrape
			// is 100 KB or so on the cluster's network.
			func(h *promhttp.HandlerOpts) { h.DisableCompression = true },
		}},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		PprofBindAddress:        o.PprofBindAddress,
		GracefulShutdownTimeout: &o.ShutdownTimeout,
		// Only the reconciler needs the lease: controller-runtime runs the
		// webhook server, caches and probes on every replica regardless.
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true, // the process exits once the manager stops
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.CertDir, TLSOpts: tlsOpts,
		}),
	}
}

func restConfig(o Options) (*rest.Config, error) {
	if o.RestConfig != nil {
		return unthrottled(rest.CopyConfig(o.RestConfig)), nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if o.Kubeconfig == "" {
			if inCluster, icErr := rest.InClusterConfig(); icErr == nil {
				return unthrottled(inCluster), nil
			}
		}
		return nil, fmt.Errorf("loading cluster configuration: %w", err)
	}
	return unthrottled(cfg), nil
}

// unthrottled turns off client-go's default client-side limit (5 requests a
// second, bursts of 10) when the configuration sets none, as
// controller-runtime's config.GetConfig does: under it, a burst of pods
// naming new ServiceAccounts (3 creates each, and their Events) queued past
// the ensure timeout (make bench: 126 of 150 cold admissions at concurrency
// 64 failed). kube-apiserver's priority and fairness does the limiting.
func unthrottled(cfg *rest.Config) *rest.Config {
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS = -1
	}
	return cfg
}

// cachedObjects are the informers the webhook runs. Namespaces and
// ServiceAccounts are watched as metadata only: the handler needs a
// namespace's labels and whether an account exists, nothing more.
func cachedObjects() []client.Object {
	nsMeta := &metav1.PartialObjectMetadata{}
	nsMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	saMeta := &metav1.PartialObjectMetadata{}
	saMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	return []client.Object{nsMeta, saMeta, &rbacv1.Role{}, &rbacv1.RoleBinding{}}
}

// cacheOptions keeps the caches small: Roles and RoleBindings only if ours,
// and no managed fields or annotations on anything (the webhook reads none
// but a namespace's policy, which trimNamespace keeps).
func cacheOptions(o Options) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{rbac.LabelManagedBy: rbac.ManagedBy})
	opts := cache.Options{
		DefaultTransform: trimForCache,
		ByObject:         transformedObjects(managed),
	}
	// The reconciler's pods and workloads, cut down to what it reads.
	maps.Copy(opts.ByObject, reconcile.CacheByObject(o.GCTTL > 0))
	if len(o.Namespaces) > 0 {
		opts.DefaultNamespaces = make(map[string]cache.Config, len(o.Namespaces))
		for _, ns := range o.Namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

func trimForCache(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		m.SetAnnotations(nil)
	}
	return obj, nil
}

// cachesSynced is ready once every declared informer of caches has synced.
func cachesSynced(caches ...cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		for _, c := range caches {
			if !c.WaitForCacheSync(ctx) {
				return fmt.Errorf("informer caches have not synced")
			}
		}
		return nil
	}
}
