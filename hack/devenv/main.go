// Command devenv is `make run`: a local kube-apiserver and etcd (the tests'
// own, ServiceAccount admission plugin on), the webhook registered against it
// with a self-signed serving certificate, and an opted-in "demo" namespace. It
// prints the KUBECONFIG to export and runs until interrupted, then removes
// everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/token-projector/token-projector/test/testenv"
)

func main() {
	restore := takeForeground()
	err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devenv:", err)
	}
	restore()
	if err != nil {
		os.Exit(1)
	}
}

func run() error {
	metricsAddr := flag.String("metrics-bind-address", "127.0.0.1:8080", "Where the webhook serves Prometheus metrics.")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseDevMode(false)))
	ctx := ctrl.SetupSignalHandler()

	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	if err := env.CreateNamespace(ctx, "demo", testenv.OptedIn()); err != nil {
		return err
	}
	kubeconfig, err := writeKubeconfig(env)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(kubeconfig))

	opts, err := env.ServerOptions()
	if err != nil {
		return err
	}
	opts.MetricsBindAddress = *metricsAddr
	hook, err := testenv.StartWebhook(ctrl.LoggerInto(ctx, ctrl.Log.WithName("token-projector")), opts, time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf(`
token-projector is running against a local kube-apiserver (%s).

  export KUBECONFIG=%s
  kubectl apply -f examples/pod.yaml
  kubectl -n demo get pod web -o yaml          # the projected token volume and mounts
  kubectl -n demo get sa,role,rolebinding      # nginx and nginx-create-token

Metrics: http://%s/metrics   Readiness: http://%s/readyz
Press Ctrl-C to stop; everything started here is removed.
`, env.Config.Host, kubeconfig, opts.MetricsBindAddress, opts.HealthProbeBindAddress)
	<-ctx.Done()
	fmt.Println("\nstopping")
	if err := hook.Stop(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// writeKubeconfig writes an admin kubeconfig for the local API server.
func writeKubeconfig(env *testenv.Env) (string, error) {
	user, err := env.AddUser(envtestAdmin(), nil)
	if err != nil {
		return "", err
	}
	b, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	cfg, err := clientcmd.Load(b)
	if err != nil {
		return "", err
	}
	renameContext(cfg, "token-projector-dev")
	dir, err := os.MkdirTemp("", "token-projector-dev-")
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, "kubeconfig")
	return file, clientcmd.WriteToFile(*cfg, file)
}

func renameContext(cfg *clientcmdapi.Config, name string) {
	if ctx, ok := cfg.Contexts[cfg.CurrentContext]; ok {
		delete(cfg.Contexts, cfg.CurrentContext)
		cfg.Contexts[name] = ctx
		cfg.CurrentContext = name
	}
}
