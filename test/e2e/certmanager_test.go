package e2e

import (
	"context"
	"sync"

	"k8s.io/client-go/rest"

	"github.com/token-projector/token-projector/test/testenv/certmanager"
)

// certManager runs once per test binary, for every test: cert-manager's
// controllers register process-wide metrics and are not meant to be started
// twice in one process.
var certManager struct {
	controllers, injector sync.Once
	ctx                   context.Context
	stop                  context.CancelFunc
	done                  []<-chan struct{}
	err                   error
}

// ensureCertificateControllers starts the certificate controllers unless
// they run already.
func ensureCertificateControllers(kubeconfig string) error {
	certManager.controllers.Do(func() {
		done, err := certmanager.StartCertificateControllers(certManager.ctx, kubeconfig)
		if err != nil {
			certManager.err = err
			return
		}
		certManager.done = append(certManager.done, done)
	})
	return certManager.err
}

// ensureCAInjector starts the CA injector unless it runs already.
func ensureCAInjector(cfg *rest.Config) error {
	var err error
	certManager.injector.Do(func() {
		var done <-chan struct{}
		if done, err = certmanager.StartCAInjector(certManager.ctx, cfg); err == nil {
			certManager.done = append(certManager.done, done)
		}
	})
	return err
}

// stopCertManager stops whatever ran and waits for it.
func stopCertManager() {
	certManager.stop()
	for _, done := range certManager.done {
		<-done
	}
}
