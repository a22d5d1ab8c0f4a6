// Package certmanager runs the real cert-manager in-process, from the
// github.com/cert-manager/cert-manager module: the certificate controllers
// of its controller binary and its CA injector, against any API server.
// test/e2e and test/cluster issue the webhook's serving certificate with it.
// cert-manager's controllers register process-wide metrics: start each at
// most once per process.
package certmanager

import (
	"context"
	"fmt"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	// The issuer types the chart uses register themselves with the issuers
	// controller; without them it reports "issuer not registered".
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// CertificateControllers are the controllers of cert-manager's controller
// binary that issue and renew a Certificate from a self-signed or CA Issuer.
var CertificateControllers = []string{
	issuers.ControllerName,
	approver.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
}

// StartCertificateControllers runs cert-manager's certificate controllers
// in-process, built by its own registered constructors, against the API
// server of kubeconfig. They stop with ctx; done is closed when all have.
func StartCertificateControllers(ctx context.Context, kubeconfig string) (done <-chan struct{}, err error) {
	ctx = logf.NewContext(ctx, ctrl.Log.WithName("cert-manager"))
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		Namespace:          "", // every namespace
		CertificateOptions: controller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Second,
			CertificateRequestMaximumBackoffDuration: 10 * time.Second,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cert-manager context: %w", err)
	}
	var controllers []controller.Interface
	for _, name := range CertificateControllers {
		constructor, ok := controller.Known()[name]
		if !ok {
			return nil, fmt.Errorf("cert-manager has no controller %q", name)
		}
		c, err := constructor(factory)
		if err != nil {
			return nil, fmt.Errorf("cert-manager controller %s: %w", name, err)
		}
		controllers = append(controllers, c)
	}
	// The constructors registered their informers; start them, as the
	// controller binary does once every controller is built.
	shared, err := factory.Build()
	if err != nil {
		return nil, err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())

	finished := make(chan struct{})
	errs := make(chan error, len(controllers))
	for _, c := range controllers {
		go func() { errs <- c.Run(1, ctx) }()
	}
	go func() {
		defer close(finished)
		for range controllers {
			if err := <-errs; err != nil {
				ctrl.Log.Error(err, "cert-manager controller stopped")
			}
		}
		shared.KubeSharedInformerFactory.Shutdown()
		shared.SharedInformerFactory.Shutdown()
	}()
	return finished, nil
}

// StartCAInjector runs cert-manager's CA injector in-process for
// MutatingWebhookConfigurations, configured as its binary configures it.
func StartCAInjector(ctx context.Context, cfg *rest.Config) (done <-chan struct{}, err error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := cmapi.AddToScheme(scheme); err != nil {
		return nil, err
	}
	skip := true
	mgr, err := ctrl.NewManager(util.RestConfigWithUserAgent(cfg, "cainjector"), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The webhook's manager registered controllers in this process's
		// name registry too, in other tests.
		Controller: config.Controller{SkipNameValidation: &skip},
		// Secrets are cached as metadata only and read live.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, err
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor:        map[string]bool{"mutatingwebhookconfiguration": true},
	}); err != nil {
		return nil, err
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if err := mgr.Start(logf.NewContext(ctx, ctrl.Log.WithName("cainjector"))); err != nil {
			ctrl.Log.Error(err, "CA injector stopped")
		}
	}()
	return finished, nil
}
