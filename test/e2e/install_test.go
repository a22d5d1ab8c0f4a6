package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apiutil "github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/render"
	"github.com/token-projector/token-projector/test/testenv"
)

// podsWebhook is the name of the pod webhook in config/webhook.
const podsWebhook = "pods.token-projector.io"

// installation is one release of the chart installed in the test cluster,
// its serving certificate issued by cert-manager, and its webhook running.
type installation struct {
	release, namespace string
	fullname           string
	objs               []*unstructured.Unstructured
	addr               string // the webhook's address, in its certificate
	certDir            string // where the "kubelet" projects the Secret
	ca, leaf           *x509.Certificate
	revision           int
	healthAddr         string
	webhookArgs        []string
}

// install does what `helm install <release> -n <ns> [args]` does, and runs
// the webhook as its Deployment would. No kubelet or Service routing runs
// here, so the webhook runs as a local process: the webhook configuration
// calls it by URL, and its certificate also names 127.0.0.1. Nothing else
// of the rendering changes, and it carries no caBundle: cert-manager must
// inject it. The webhook authenticates as the chart's ServiceAccount, so
// only the chart's RBAC authorises it.
func install(t *testing.T, c client.Client, release, ns string, identity *rest.Config, args ...string) *installation {
	t.Helper()
	ctx := context.Background()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	in := &installation{release: release, namespace: ns, addr: "127.0.0.1:" + strconv.Itoa(port), certDir: t.TempDir()}
	if in.objs, err = render.ChartRelease(root, release, ns, args...); err != nil {
		t.Fatal(err)
	}
	in.fullname = render.OfKind(in.objs, "Deployment")[0].GetName()
	in.pointAtLocalWebhook(t)
	for _, o := range in.objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("helm"), client.ForceOwnership); err != nil {
			t.Fatalf("installing %s: %v", render.Key(o), err)
		}
	}
	// A failing webhook configuration left behind would block the next
	// test's pods (failurePolicy: Fail).
	t.Cleanup(func() {
		for _, o := range in.objs {
			if err := c.Delete(context.Background(), o); client.IgnoreNotFound(err) != nil {
				t.Errorf("uninstalling %s: %v", render.Key(o), err)
			}
		}
	})

	// cert-manager issues the serving certificate through the chart's
	// self-signed Issuer -> CA Certificate -> CA Issuer chain.
	if err := ensureCertificateControllers(writeKubeconfig(t, env.Config)); err != nil {
		t.Fatal(err)
	}
	in.revision = waitIssued(t, c, ns, in.certificate(), 0)
	secret := servingSecret(t, c, ns, in.certificate())
	in.leaf = parseCert(t, secret.Data[corev1.TLSCertKey])
	if !slices.Contains(in.leaf.DNSNames, in.fullname+"-webhook."+ns+".svc") || in.leaf.IsCA {
		t.Errorf("serving certificate: DNS names %v, CA %v", in.leaf.DNSNames, in.leaf.IsCA)
	}
	in.ca = parseCert(t, secret.Data[cmmeta.TLSCAKey])
	if !in.ca.IsCA || in.leaf.CheckSignatureFrom(in.ca) != nil {
		t.Fatalf("the serving certificate is not signed by the chart's CA %q", in.ca.Subject)
	}
	if err := projectSecret(in.certDir, secret.Data); err != nil {
		t.Fatal(err)
	}

	// The webhook binary with the chart's own flags, bar addresses, paths and
	// the drain delay.
	healthPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	in.healthAddr = "127.0.0.1:" + strconv.Itoa(healthPort)
	in.webhookArgs = overrideArgs(chartArgs(t, in.objs), map[string]string{
		"kubeconfig":                writeKubeconfig(t, identity),
		"cert-dir":                  in.certDir,
		"webhook-host":              "127.0.0.1",
		"webhook-port":              strconv.Itoa(port),
		"health-probe-bind-address": in.healthAddr,
		"metrics-bind-address":      "0",
		// No Service routes here, so there is nothing to drain from; the
		// drain itself is test/faults' TestDrainOnSIGTERM.
		"drain-delay": "0s",
		// In a pod, the Lease's namespace is the pod's own; here, the release's.
		"leader-election-namespace": ns,
	})
	return in
}

func (in *installation) certificate() string { return in.fullname + "-serving-cert" }

// startWebhook runs the webhook as the Deployment's container would.
func (in *installation) startWebhook(t *testing.T) *webhookProcess {
	t.Helper()
	return startWebhook(t, in.webhookArgs, in.addr, in.healthAddr)
}

// TestHelmInstallWithCertManager is the install a cluster admin does, end to
// end, in the order it happens: install the chart, let cert-manager issue and
// inject, run the webhook, admit pods, renew the certificate under the
// running webhook, then take the webhook away and see who is still admitted.
// Each step needs the previous one, so a failure stops the test.
func TestHelmInstallWithCertManager(t *testing.T) {
	ctx := context.Background()
	c := adminClient(t)
	ns := render.Namespace

	// 1-3. Install, issue, run the webhook with the chart's RBAC.
	in := install(t, c, render.Release, ns, env.WebhookConfig)
	hook := in.startWebhook(t)
	optedIn := namespace(t, testenv.OptedIn())

	// 4. Until the CA injector runs, kube-apiserver has no reason to trust
	// the webhook, and with failurePolicy Fail it rejects annotated pods.
	err := c.Create(ctx, annotatedPod(optedIn, "before-injection", nil))
	if err == nil || !strings.Contains(err.Error(), podsWebhook) || !strings.Contains(err.Error(), "x509") {
		t.Fatalf("without the injected CA, want a TLS verification failure calling %s, got %v", podsWebhook, err)
	}
	t.Logf("Before injection: %v", err)

	// 5. The CA injector copies the chart's CA into every webhook of the
	// configuration (cert-manager.io/inject-ca-from).
	if err := ensureCAInjector(env.Config); err != nil {
		t.Fatal(err)
	}
	waitCABundle(t, c, in.fullname, in.ca)

	// 6. An annotated pod created through the API server comes back mutated,
	// and the webhook created its ServiceAccount with the chart's RBAC.
	p := createEventually(t, c, annotatedPod(optedIn, "web", map[string]string{mutate.AnnotationServiceAccount: "web"}))
	assertMutated(t, p, "web")
	var sa corev1.ServiceAccount
	if err := c.Get(ctx, client.ObjectKey{Namespace: optedIn, Name: "web"}, &sa); err != nil {
		t.Errorf("the webhook did not ensure its ServiceAccount with the chart's RBAC: %v", err)
	}

	// 7. Renew the certificate, as `cmctl renew` does. The kubelet would
	// update the mounted Secret; the running webhook must serve the new
	// certificate without a restart, and the API server must still trust it.
	roots := x509.NewCertPool()
	roots.AddCert(in.ca)
	before, err := servedSerial(in.addr, roots)
	if err != nil {
		t.Fatal(err)
	}
	if before.Cmp(in.leaf.SerialNumber) != 0 {
		t.Fatalf("webhook serves serial %x, the Secret holds %x", before, in.leaf.SerialNumber)
	}
	renew(t, c, ns, in.certificate())
	waitIssued(t, c, ns, in.certificate(), in.revision)
	renewed := servingSecret(t, c, ns, in.certificate())
	newLeaf := parseCert(t, renewed.Data[corev1.TLSCertKey])
	if newLeaf.SerialNumber.Cmp(in.leaf.SerialNumber) == 0 || bytes.Equal(newLeaf.RawSubjectPublicKeyInfo, in.leaf.RawSubjectPublicKeyInfo) {
		t.Fatal("renewal produced no new certificate and key (privateKey.rotationPolicy: Always)")
	}
	if err := projectSecret(in.certDir, renewed.Data); err != nil {
		t.Fatal(err)
	}
	waitServes(t, in.addr, roots, newLeaf.SerialNumber)
	if !hook.running() {
		t.Fatal("the webhook exited during the renewal")
	}
	p = createEventually(t, c, annotatedPod(optedIn, "after-renewal", map[string]string{mutate.AnnotationServiceAccount: "web"}))
	assertMutated(t, p, "web")

	// 8. The webhook goes away: failurePolicy Fail keeps annotated pods in
	// opted-in namespaces out with a message that names the webhook, and
	// the selectors keep everything else admitted.
	hook.stop(t)
	err = c.Create(ctx, annotatedPod(optedIn, "during-outage", nil))
	if err == nil {
		t.Fatal("an annotated pod in an opted-in namespace was admitted without the webhook")
	}
	if msg := err.Error(); !strings.Contains(msg, `failed calling webhook "`+podsWebhook+`"`) || !strings.Contains(msg, in.addr) {
		t.Errorf("outage message does not name the webhook and its address: %s", msg)
	}
	t.Logf("During the outage: %v", err)
	admitted := map[string]*corev1.Pod{
		"unannotated pod, opted-in namespace":   pod(optedIn, "plain", nil),
		"opted-out pod, opted-in namespace":     withLabel(annotatedPod(optedIn, "opted-out", nil), mutate.LabelInject, mutate.InjectDisabled),
		"annotated pod, namespace not opted in": annotatedPod(namespace(t, nil), "elsewhere", nil),
	}
	// Excluded by name, even when someone labels them.
	for _, n := range []string{"kube-system", "kube-public", "kube-node-lease", ns} {
		optIn(t, c, n)
		admitted["annotated pod, labelled "+n] = annotatedPod(n, "tp-excluded", nil)
	}
	for name, pod := range admitted {
		if err := c.Create(ctx, pod); err != nil {
			t.Errorf("%s: rejected during the outage: %v", name, err)
			continue
		}
		if _, injected := pod.Annotations[mutate.AnnotationStatus]; injected {
			t.Errorf("%s: mutated, yet the webhook is down", name)
		}
	}
}

// TestHelmInstallNamespacedScope installs the chart with rbac.scope
// namespaces under another release name and namespace: the webhook, bound
// by RoleBindings in the listed namespace only (and to read Namespaces),
// starts with its caches restricted, mutates pods there, and is never
// called for an opted-in namespace it may not write to.
func TestHelmInstallNamespacedScope(t *testing.T) {
	ctx := context.Background()
	c := adminClient(t)
	const ns, release = "security", "tp"
	served := namespace(t, testenv.OptedIn())
	other := namespace(t, testenv.OptedIn())
	if err := env.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	user, err := env.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + ns + ":" + release + "-token-projector",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := install(t, c, release, ns, user.Config(), "--set", "rbac.scope=namespaces", "--set", "rbac.namespaces={"+served+"}")
	if err := ensureCAInjector(env.Config); err != nil {
		t.Fatal(err)
	}
	in.startWebhook(t)
	waitCABundle(t, c, in.fullname, in.ca)

	p := createEventually(t, c, annotatedPod(served, "web", map[string]string{mutate.AnnotationServiceAccount: "web"}))
	assertMutated(t, p, "web")
	p = annotatedPod(other, "web", map[string]string{mutate.AnnotationServiceAccount: "web"})
	if err := c.Create(ctx, p); err != nil {
		t.Fatalf("a namespace outside rbac.namespaces was sent to the webhook: %v", err)
	}
	if _, mutated := p.Annotations[mutate.AnnotationStatus]; mutated {
		t.Errorf("pod in %s mutated by a webhook scoped to %s", other, served)
	}
}

func adminClient(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := cmapi.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pointAtLocalWebhook makes the two changes a cluster without kubelet needs:
// the webhook configuration calls in.addr by URL instead of through the
// Service, and the serving certificate names in.addr's IP.
func (in *installation) pointAtLocalWebhook(t *testing.T) {
	t.Helper()
	cfg := render.Find(in.objs, "MutatingWebhookConfiguration", in.fullname)
	cert := render.Find(in.objs, "Certificate", in.certificate())
	if cfg == nil || cert == nil {
		t.Fatalf("the chart renders no %s webhook configuration or certificate: %v", in.fullname, render.Keys(in.objs))
	}
	hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
	for i := range hooks {
		h := hooks[i].(map[string]any)
		path, _, _ := unstructured.NestedString(h, "clientConfig", "service", "path")
		h["clientConfig"] = map[string]any{"url": "https://" + in.addr + path}
	}
	if err := unstructured.SetNestedSlice(cfg.Object, hooks, "webhooks"); err != nil {
		t.Fatal(err)
	}
	host, _, _ := strings.Cut(in.addr, ":")
	if err := unstructured.SetNestedStringSlice(cert.Object, []string{host}, "spec", "ipAddresses"); err != nil {
		t.Fatal(err)
	}
}

// chartArgs are the webhook container's arguments in the chart's Deployment.
func chartArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var d appsv1.Deployment
	if err := render.Into(render.OfKind(objs, "Deployment")[0], &d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Args
}

// waitIssued waits until the Certificate is Ready at a revision above after,
// with no issuance in flight (Ready can precede the revision), and returns
// that revision.
func waitIssued(t *testing.T, c client.Client, ns, name string, after int) int {
	t.Helper()
	var crt cmapi.Certificate
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &crt); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		ready := apiutil.CertificateHasCondition(&crt, cmapi.CertificateCondition{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue})
		issuing := apiutil.GetCertificateCondition(&crt, cmapi.CertificateConditionIssuing) != nil
		return ready && !issuing && crt.Status.Revision != nil && *crt.Status.Revision > after, nil
	})
	if err != nil {
		t.Fatalf("Certificate %s not issued past revision %d: %v (status %+v)", name, after, err, crt.Status)
	}
	return *crt.Status.Revision
}

// renew asks cert-manager to reissue now, as `cmctl renew` does.
func renew(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	var crt cmapi.Certificate
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &crt); err != nil {
		t.Fatal(err)
	}
	apiutil.SetCertificateCondition(&crt, crt.Generation, cmapi.CertificateConditionIssuing, cmmeta.ConditionTrue, "ManuallyTriggered", "Certificate re-issuance manually triggered")
	if err := c.Status().Update(context.Background(), &crt); err != nil {
		t.Fatal(err)
	}
}

func servingSecret(t *testing.T, c client.Client, ns, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("no PEM certificate in %q", pemBytes)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// waitCABundle waits until every webhook of the configuration trusts ca.
func waitCABundle(t *testing.T, c client.Client, name string, ca *x509.Certificate) {
	t.Helper()
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &cfg); err != nil {
			return false, err
		}
		for _, w := range cfg.Webhooks {
			if !bundleHas(w.ClientConfig.CABundle, ca) {
				return false, nil
			}
		}
		return len(cfg.Webhooks) > 0, nil
	})
	if err != nil {
		t.Fatalf("the CA injector did not inject %q into %s: %v", ca.Subject, name, err)
	}
}

// bundleHas reports whether a PEM bundle holds ca (after a CA rotation the
// injector merges old and new).
func bundleHas(bundle []byte, ca *x509.Certificate) bool {
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return false
		}
		if bytes.Equal(block.Bytes, ca.Raw) {
			return true
		}
	}
}

// waitServes waits until the webhook serves the certificate with serial.
func waitServes(t *testing.T, addr string, roots *x509.CertPool, serial *big.Int) {
	t.Helper()
	var last *big.Int
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last, lastErr = servedSerial(addr, roots)
		return lastErr == nil && last.Cmp(serial) == 0, nil
	})
	if err != nil {
		t.Fatalf("the running webhook still serves %x, not the renewed %x (%v, last error %v)", last, serial, err, lastErr)
	}
}

// createEventually creates p, retrying while kube-apiserver has not yet
// picked up the injected caBundle (its webhook informer lags the write).
func createEventually(t *testing.T, c client.Client, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		attempt := p.DeepCopy()
		last = c.Create(ctx, attempt)
		if last == nil {
			p = attempt
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v (last: %v)", p.Namespace, p.Name, err, last)
	}
	return p
}

func assertMutated(t *testing.T, p *corev1.Pod, sa string) {
	t.Helper()
	if _, ok := p.Annotations[mutate.AnnotationStatus]; !ok {
		t.Errorf("pod %s has no %s annotation: not mutated", p.Name, mutate.AnnotationStatus)
	}
	if p.Spec.ServiceAccountName != sa {
		t.Errorf("pod %s runs as %q, want %q", p.Name, p.Spec.ServiceAccountName, sa)
	}
	var projected bool
	for _, v := range p.Spec.Volumes {
		projected = projected || (v.Name == mutate.VolumeName && v.Projected != nil)
	}
	mounted := slices.ContainsFunc(p.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == mutate.VolumeName && m.MountPath == mutate.DefaultMountPath && m.ReadOnly
	})
	if !projected || !mounted {
		t.Errorf("pod %s: projected token volume %v, mounted read-only at %s %v", p.Name, projected, mutate.DefaultMountPath, mounted)
	}
}

var nsCount int

// namespace creates a fresh namespace with labels.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	nsCount++
	name := fmt.Sprintf("e2e-%d", nsCount)
	if err := env.CreateNamespace(context.Background(), name, labels); err != nil {
		t.Fatal(err)
	}
	return name
}

// optIn labels an existing namespace opted in and gives it the default
// ServiceAccount no controller-manager created.
func optIn(t *testing.T, c client.Client, name string) {
	t.Helper()
	ctx := context.Background()
	var n corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(n.DeepCopy())
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[mutate.LabelInject] = mutate.InjectEnabled
	if err := c.Patch(ctx, &n, patch); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: mutate.DefaultServiceAccount}}
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func pod(ns, name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
	}
}

// annotatedPod asks for a vault token, plus extra annotations.
func annotatedPod(ns, name string, extra map[string]string) *corev1.Pod {
	a := map[string]string{mutate.AnnotationAudience: "vault"}
	for k, v := range extra {
		a[k] = v
	}
	return pod(ns, name, a)
}

func withLabel(p *corev1.Pod, k, v string) *corev1.Pod {
	p.Labels = map[string]string{k: v}
	return p
}
