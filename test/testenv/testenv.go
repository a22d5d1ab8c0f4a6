// Package testenv starts the control plane every test tier and 'make run'
// share: a real kube-apiserver and etcd (built by hack/controlplane.sh) with
// the ServiceAccount admission plugin enabled, the shipped webhook
// configuration pointed at a local serving address, and a client for the
// webhook that is bound by the shipped RBAC instead of being a superuser.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/server"
)

const (
	// ReleaseNamespace is the namespace the shipped manifests install into.
	ReleaseNamespace = "token-projector-system"
	// WebhookUser is the identity the webhook's client authenticates as: the
	// username kube-apiserver gives the chart's ServiceAccount, so the shipped
	// bindings (subject kind ServiceAccount) apply to it unchanged.
	WebhookUser = "system:serviceaccount:" + ReleaseNamespace + ":token-projector"
)

// Options tunes Start.
type Options struct {
	// SkipRBACBinding leaves the webhook's user without bindings, so that a
	// test can bind it its own way (the namespaced scope).
	SkipRBACBinding bool
	// SkipRBAC installs none of config/rbac (roles nor bindings), for tests
	// that install the RBAC rendered by the Helm chart instead.
	SkipRBAC bool
	// SkipWebhookConfiguration installs no webhook configuration, for tests
	// that install the one rendered by the Helm chart.
	SkipWebhookConfiguration bool
	// CRDDirectoryPaths are directories or files of CustomResourceDefinitions
	// to install before Start returns (cert-manager's, for instance).
	CRDDirectoryPaths []string
	// APIServerFlags are extra kube-apiserver flags, such as
	// admission-control-config-file (test/faults gives kube-apiserver a
	// client certificate to present to webhooks).
	APIServerFlags map[string]string
}

// Env is a running control plane.
type Env struct {
	Root string
	*envtest.Environment
	// Admin is a superuser client for test setup and assertions.
	Admin client.Client
	// WebhookConfig authenticates as WebhookUser.
	WebhookConfig *rest.Config
	// Scheme knows the built-in types.
	Scheme *runtime.Scheme
}

// Start starts kube-apiserver and etcd, installs the shipped RBAC and
// webhook configuration, and returns the environment. Stop it with Stop.
func Start(opts Options) (_ *Env, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := Assets(root)
	if err != nil {
		return nil, err
	}
	hook, err := webhookConfiguration(root)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			LocalServingHost: "127.0.0.1",
			MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{hook},
		},
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              opts.CRDDirectoryPaths,
			ErrorIfPathMissing: true,
		},
	}
	if opts.SkipWebhookConfiguration {
		env.WebhookInstallOptions.MutatingWebhooks = nil
	}
	// envtest disables this plugin by default; it is the constraint that
	// shapes this product (a pod may not name a missing ServiceAccount), so
	// every test runs with it.
	env.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	for flag, value := range opts.APIServerFlags {
		env.ControlPlane.GetAPIServer().Configure().Set(flag, value)
	}
	// The port must be known before Start installs the configuration.
	if env.WebhookInstallOptions.LocalServingPort, err = FreePort(); err != nil {
		return nil, err
	}
	for i := range hook.Webhooks {
		cc := &hook.Webhooks[i].ClientConfig
		cc.URL = ptr(fmt.Sprintf("https://127.0.0.1:%d%s", env.WebhookInstallOptions.LocalServingPort, *cc.Service.Path))
		cc.Service = nil
	}

	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	defer func() {
		if err != nil {
			_ = env.Stop()
		}
	}()
	if err := checkVersion(cfg, assets); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root, Environment: env, Admin: admin, Scheme: scheme}
	user, err := env.AddUser(envtest.User{Name: WebhookUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ReleaseNamespace}}, nil)
	if err != nil {
		return nil, err
	}
	e.WebhookConfig = user.Config()
	ctx := context.Background()
	if err := e.CreateNamespace(ctx, ReleaseNamespace, nil); err != nil {
		return nil, err
	}
	if opts.SkipRBAC {
		return e, nil
	}
	// token-projector-gc too, unbound as the chart leaves it without
	// gc.enabled: the suites that collect garbage bind it themselves.
	for _, f := range []string{"config/rbac/role.yaml", "config/gc/role.yaml"} {
		if err := e.ApplyFile(ctx, filepath.Join(root, f)); err != nil {
			return nil, err
		}
	}
	if !opts.SkipRBACBinding {
		if err := e.ApplyFile(ctx, filepath.Join(root, "config/rbac/role_binding.yaml")); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// ServerOptions are the webhook's options for this environment: the
// restricted client, the envtest serving certificate and port, and probes on
// a free local port. Metrics are off: tests read the in-process registry.
func (e *Env) ServerOptions() (server.Options, error) {
	o := server.DefaultOptions()
	o.RestConfig = e.WebhookConfig
	o.WebhookHost = e.WebhookInstallOptions.LocalServingHost
	o.WebhookPort = e.WebhookInstallOptions.LocalServingPort
	o.CertDir = e.WebhookInstallOptions.LocalServingCertDir
	o.MetricsBindAddress = "0"
	// A test that turns leader election on finds the Lease where a cluster
	// install keeps it, under the shipped Role.
	o.LeaderElectionNamespace = ReleaseNamespace
	port, err := FreePort()
	if err != nil {
		return o, err
	}
	o.HealthProbeBindAddress = "127.0.0.1:" + strconv.Itoa(port)
	return o, nil
}

// CreateNamespace creates a namespace with labels and, since no
// controller-manager runs here, its "default" ServiceAccount.
func (e *Env) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	if err := e.Admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
		return err
	}
	return e.Admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: mutate.DefaultServiceAccount}})
}

// OptedIn are the labels that opt a namespace in.
func OptedIn() map[string]string { return map[string]string{mutate.LabelInject: mutate.InjectEnabled} }

// ApplyFile creates every object of a multi-document YAML file.
func (e *Env) ApplyFile(ctx context.Context, file string) error {
	objs, err := ReadObjects(file)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := e.Admin.Create(ctx, o); err != nil {
			return fmt.Errorf("%s: creating %T %s: %w", file, o, o.GetName(), err)
		}
	}
	return nil
}

// ReadObjects decodes a multi-document YAML file into typed objects.
func ReadObjects(file string) ([]client.Object, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var objs []client.Object
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	codecs := clientgoscheme.Codecs.UniversalDeserializer()
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(bytes.TrimSpace(raw.Raw)) == 0 || string(bytes.TrimSpace(raw.Raw)) == "null" {
			continue
		}
		obj, _, err := codecs.Decode(raw.Raw, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		objs = append(objs, obj.(client.Object))
	}
}

func webhookConfiguration(root string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	b, err := os.ReadFile(filepath.Join(root, "config/webhook/manifests.yaml"))
	if err != nil {
		return nil, err
	}
	var hook admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(b, &hook); err != nil {
		return nil, err
	}
	for _, w := range hook.Webhooks {
		if w.ClientConfig.Service == nil || w.ClientConfig.Service.Path == nil {
			return nil, fmt.Errorf("config/webhook/manifests.yaml: webhook %s has no service path", w.Name)
		}
	}
	return &hook, nil
}

// RepoRoot is the directory of the project's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/token-projector/token-projector\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the token-projector module")
		}
		dir = parent
	}
}

// Assets is the directory of kube-apiserver and etcd: $KUBEBUILDER_ASSETS
// or what hack/controlplane.sh builds. make test runs the integration and
// end-to-end tiers once more with KUBEBUILDER_ASSETS set to the oldest
// supported kube-apiserver (hack/controlplane.sh --oldest), and with
// -count=1: go test's result cache knows only the environment a test reads
// once testing.M.Run has begun, and this runs in TestMain, before it, so
// the two runs would otherwise be served one another's results.
func Assets(root string) (string, error) {
	cmd := exec.Command(filepath.Join(root, "hack/controlplane.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/controlplane.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func ptr[T any](v T) *T { return &v }

// assetsVersion finds the version hack/controlplane.sh names its directories
// by (bin/k8s/kube-apiserver-v1.33.13-etcd-...).
var assetsVersion = regexp.MustCompile(`kube-apiserver-(v[0-9]+\.[0-9]+\.[0-9]+)-`)

// checkVersion makes sure the API server that answers is the one the assets
// directory promises, so that a run meant for one Kubernetes version cannot
// pass on another binary; it says which version it is on stderr (shown by
// go test -v and with failures). A directory not named by
// hack/controlplane.sh is only reported.
func checkVersion(cfg *rest.Config, assets string) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	info, err := dc.ServerVersion()
	if err != nil {
		return fmt.Errorf("reading kube-apiserver's version: %w", err)
	}
	fmt.Fprintf(os.Stderr, "testenv: kube-apiserver %s from %s\n", info.GitVersion, assets)
	if m := assetsVersion.FindStringSubmatch(filepath.Base(assets)); m != nil && m[1] != info.GitVersion {
		return fmt.Errorf("kube-apiserver in %s reports version %s, not the %s its directory is named for", assets, info.GitVersion, m[1])
	}
	return nil
}
