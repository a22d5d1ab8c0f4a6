// Package faults runs the webhook against a real kube-apiserver while things
// go wrong: the API server slow or unreachable in the middle of an ensure
// (through a proxy on 127.0.0.1 that can hold or cut requests), the webhook
// process killed with SIGKILL in a burst of admissions, its serving
// certificate rotated under load, and callers without the client
// certificate --client-ca requires.
//
// kube-apiserver here presents a client certificate to webhooks (through
// its admission configuration) and trusts the webhook through a CA this
// package makes, so that it can issue new serving certificates at will.
package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

var (
	env *testenv.Env
	// servingCA signs the webhook's serving certificates; kube-apiserver
	// trusts it through the webhook configuration's caBundle.
	servingCA *ca
	// clientCA signs the certificate kube-apiserver presents to webhooks.
	clientCA *ca
	// certs is the webhook's serving certificate directory.
	certs *certDir
	// workDir holds the files of this run.
	workDir string
	// webhookTimeout is the installed configuration's timeoutSeconds: how
	// long kube-apiserver waits for the webhook.
	webhookTimeout time.Duration
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Suite{
		Name: "faults", LogLevel: zapcore.ErrorLevel, Env: &env,
		Prepare:  prepare,
		Setup:    func(ctx context.Context, _ *testenv.Env) error { return serveWithCA(ctx) },
		Teardown: func() { _ = os.RemoveAll(workDir) },
	}.Main(m))
}

// prepare makes the CAs and kube-apiserver's admission configuration, which
// it reads at start.
func prepare(o *testenv.Options) error {
	var err error
	if workDir, err = os.MkdirTemp("", "token-projector-faults-"); err != nil {
		return err
	}
	if servingCA, err = newCA("serving-ca"); err != nil {
		return err
	}
	if clientCA, err = newCA("webhook-client-ca"); err != nil {
		return err
	}
	admissionConfig, err := apiserverClientCertificate()
	if err != nil {
		return err
	}
	o.APIServerFlags = map[string]string{"admission-control-config-file": admissionConfig}
	return nil
}

// serveWithCA writes the webhook's serving certificate and makes
// kube-apiserver trust its CA.
func serveWithCA(ctx context.Context) error {
	serving, err := servingCA.serving()
	if err != nil {
		return err
	}
	certPath := filepath.Join(workDir, "serving-certs")
	if err := os.Mkdir(certPath, 0o755); err != nil {
		return err
	}
	if certs, err = newCertDir(certPath, serving); err != nil {
		return err
	}
	return trustServingCA(ctx)
}

// apiserverClientCertificate writes kube-apiserver's admission
// configuration: present a certificate signed by clientCA to every webhook.
func apiserverClientCertificate() (string, error) {
	cert, err := clientCA.client("kube-apiserver")
	if err != nil {
		return "", err
	}
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.AuthInfos["*"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert.certPEM, ClientKeyData: cert.keyPEM}
	kcPath := filepath.Join(workDir, "webhook-client.kubeconfig")
	if err := clientcmd.WriteToFile(*kubeconfig, kcPath); err != nil {
		return "", err
	}
	config := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %q
`, kcPath)
	path := filepath.Join(workDir, "admission-config.yaml")
	return path, os.WriteFile(path, []byte(config), 0o644)
}

// trustServingCA points the installed webhook configuration at servingCA.
func trustServingCA(ctx context.Context) error {
	var hooks admissionregistrationv1.MutatingWebhookConfigurationList
	if err := env.Admin.List(ctx, &hooks); err != nil {
		return err
	}
	for i := range hooks.Items {
		h := &hooks.Items[i]
		for j := range h.Webhooks {
			h.Webhooks[j].ClientConfig.CABundle = servingCA.pem
			if s := h.Webhooks[j].TimeoutSeconds; s != nil {
				webhookTimeout = time.Duration(*s) * time.Second
			}
		}
		if err := env.Admin.Update(ctx, h); err != nil {
			return err
		}
	}
	if webhookTimeout == 0 {
		return fmt.Errorf("the webhook configuration sets no timeoutSeconds")
	}
	return nil
}

// serverOptions are the in-process webhook's options: this package's cert
// directory, and rc (the proxy's config, say) instead of the direct one.
func serverOptions(t *testing.T, rc *rest.Config) server.Options {
	t.Helper()
	o, err := env.ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	o.CertDir = certs.dir
	if rc != nil {
		o.RestConfig = rc
	}
	return o
}

// startWebhook runs the webhook in-process until the test ends.
func startWebhook(t *testing.T, o server.Options) {
	t.Helper()
	hook, err := testenv.StartWebhook(context.Background(), o, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hook.Stop(); err != nil {
			t.Errorf("stopping the webhook: %v", err)
		}
	})
	waitAdmitting(t)
}

// waitAdmitting waits until kube-apiserver gets answers from the webhook
// (it picks up a new caBundle, and the webhook its port, within moments).
func waitAdmitting(t *testing.T) {
	t.Helper()
	ns := namespace(t)
	testenv.WaitFor(t, "kube-apiserver reaches the webhook", 30*time.Second, func() bool {
		p := pod(ns, "")
		err := env.Admin.Create(context.Background(), p)
		return err == nil && len(p.Annotations[mutate.AnnotationStatus]) > 0
	})
}

var nsCounter atomic.Int64

func namespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("faults-%d", nsCounter.Add(1))
	if err := env.CreateNamespace(context.Background(), name, testenv.OptedIn()); err != nil {
		t.Fatal(err)
	}
	return name
}

func pod(ns, sa string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "web-", Annotations: map[string]string{mutate.AnnotationAudience: "vault"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "nginx:1.27"}, {Name: "sidecar", Image: "envoy:1.30"},
		}},
	}
	if sa != "" {
		p.Annotations[mutate.AnnotationServiceAccount] = sa
	}
	return p
}

// complete reports whether the identity's three objects exist, are ours and
// are exactly what the builders make.
func complete(t *testing.T, ns, sa string) bool {
	t.Helper()
	objs := testenv.Identity(ns, sa)
	for _, o := range objs {
		if !env.Exists(t, o) || !rbac.IsManaged(o) {
			return false
		}
	}
	role, rb := objs[1].(*rbacv1.Role), objs[2].(*rbacv1.RoleBinding)
	want, wantRB := rbac.Role(ns, sa), rbac.RoleBinding(ns, sa)
	return fmt.Sprint(role.Rules) == fmt.Sprint(want.Rules) &&
		rb.RoleRef == wantRB.RoleRef && fmt.Sprint(rb.Subjects) == fmt.Sprint(wantRB.Subjects)
}
