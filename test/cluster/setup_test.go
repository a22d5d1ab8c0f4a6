package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/token-projector/token-projector/test/cluster"
	"github.com/token-projector/token-projector/test/render"
	"github.com/token-projector/token-projector/test/testenv"
	"github.com/token-projector/token-projector/test/testenv/certmanager"
)

const (
	release    = "token-projector"
	releaseNS  = testenv.ReleaseNamespace
	pauseImage = "token-projector.local/pause:test"
	checkImage = "token-projector.local/tokencheck:test"
)

// env is the running cluster with the chart installed, for the scenarios.
type env struct {
	*cluster.Cluster
	root string
	bin  string // hack/cluster.sh's directory
	ctx  context.Context
	pub  *releases
}

// clusterBin is hack/cluster.sh's directory, or why the tier cannot run:
// then the test fails, unless the developer set SKIP_CLUSTER=1.
func clusterBin(t *testing.T, root string) string {
	t.Helper()
	skip := os.Getenv("SKIP_CLUSTER") == "1"
	cmd := exec.Command(filepath.Join(root, "hack/cluster.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		if skip {
			t.Skipf("SKIP_CLUSTER=1: hack/cluster.sh failed: %v", err)
		}
		t.Fatalf("hack/cluster.sh: %v (set SKIP_CLUSTER=1 to skip the cluster tier on a machine that cannot run it)", err)
	}
	bin := strings.TrimSpace(string(out))
	if missing := cluster.Missing(bin); len(missing) > 0 {
		msg := "the cluster tier cannot run on this machine; missing: " + strings.Join(missing, "; ")
		if skip {
			t.Skip("SKIP_CLUSTER=1: " + msg)
		}
		t.Fatal(msg + " (set SKIP_CLUSTER=1 to skip it)")
	}
	return bin
}

// buildImages builds the sandbox and tokencheck images, which the node
// imports from archives; the webhook's image comes from its release.
func buildImages(t *testing.T, root string) []cluster.Image {
	t.Helper()
	dir := t.TempDir()
	pause, err := cluster.BuildImage(root, dir, "test/cluster/cmd/pause", pauseImage)
	if err != nil {
		t.Fatal(err)
	}
	check, err := cluster.BuildImage(root, dir, "test/cluster/cmd/tokencheck", checkImage)
	if err != nil {
		t.Fatal(err)
	}
	return []cluster.Image{pause, check}
}

// startCluster starts the cluster and registers its teardown, which also
// checks that nothing was left behind.
func startCluster(t *testing.T, root string) *env {
	t.Helper()
	bin := clusterBin(t, root)
	images := buildImages(t, root)
	pub := publishReleases(t, root)
	var archives []string
	for _, i := range images {
		archives = append(archives, i.Archive)
	}
	ctx, cancel := context.WithCancel(context.Background())
	began := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Bin: bin, Name: "tp-cluster", PauseImage: pauseImage, Archives: archives,
		Registry: &cluster.Registry{Addr: pub.registry, Handler: pub.pulls.record(pub.handler)}, Logf: t.Logf})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Logf("cluster: up in %v", time.Since(began).Round(100*time.Millisecond))
	t.Cleanup(func() {
		cancel()
		began := time.Now()
		if err := c.Stop(); err != nil {
			t.Error(err)
			return
		}
		t.Logf("cluster: torn down in %v; no process, mount, cgroup, namespace or host path left", time.Since(began).Round(100*time.Millisecond))
	})
	return &env{Cluster: c, root: root, bin: bin, ctx: ctx, pub: pub}
}

// run runs a command with the cluster's admin kubeconfig and a private
// home (helm's and kubectl's caches stay in the work directory).
func (e *env) run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	home := filepath.Join(e.Dir(), "home")
	cmd := exec.CommandContext(e.ctx, bin, args...)
	cmd.Dir = e.root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig, "HOME="+home,
		"HELM_CACHE_HOME="+filepath.Join(home, "helm-cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "helm-config"),
		"HELM_DATA_HOME="+filepath.Join(home, "helm-data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// kubectl runs the cluster's kubectl, failing the test on error.
func (e *env) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.run(t, filepath.Join(e.bin, "kubectl"), append([]string{"--cache-dir", filepath.Join(e.Dir(), "home", "kube-cache")}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// helm runs the pinned helm, failing the test on error.
func (e *env) helm(t *testing.T, args ...string) string {
	t.Helper()
	helm, err := render.Helm(e.root)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.run(t, helm, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// installCertManager installs cert-manager's CRDs as its manifests do and
// runs its certificate controllers and CA injector in-process until the
// test ends.
func (e *env) installCertManager(t *testing.T) {
	t.Helper()
	crds, err := render.CertManagerCRDs(e.root)
	if err != nil {
		t.Fatal(err)
	}
	e.kubectl(t, "apply", "--server-side", "-f", crds)
	e.kubectl(t, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
	ctx, stop := context.WithCancel(e.ctx)
	controllers, err := certmanager.StartCertificateControllers(ctx, e.Kubeconfig)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	injector, err := certmanager.StartCAInjector(ctx, e.Config)
	if err != nil {
		stop()
		<-controllers
		t.Fatal(err)
	}
	// Before the cluster's teardown (cleanups run last-in first-out).
	t.Cleanup(func() {
		stop()
		<-controllers
		<-injector
	})
}

// install installs the first release as docs/install.md says (its
// namespace under the restricted Pod Security Standard; the chart from the
// registry, no value set) and waits until the API server calls the webhook
// through its Service: both replicas Ready behind it, running the
// release's image, and the CA injected.
func (e *env) install(t *testing.T) {
	t.Helper()
	e.kubectl(t, "create", "namespace", releaseNS)
	e.kubectl(t, "label", "namespace", releaseNS, "pod-security.kubernetes.io/enforce=restricted")
	e.helm(t, "install", release, e.pub.chart, "--version", e.pub.first.ChartVersion, "--plain-http",
		"--namespace", releaseNS, "--wait", "--timeout", "5m")
	e.waitWebhookReady(t, 2)
	e.checkRunsRelease(t, e.pub.first)
	summary.install.Store("oci")
	e.waitProxied(t)
	e.waitFor(t, "the CA bundle in the webhook configuration", 2*time.Minute, func(ctx context.Context) (bool, error) {
		list, err := e.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
		if err != nil || len(list.Items) != 1 {
			return false, err
		}
		return caInjected(list.Items[0]), nil
	})
}

// waitProxied waits until kube-proxy sends the webhook Service's cluster IP
// to every ready endpoint: ready endpoints alone left kube-apiserver's first
// calls refused ("connection refused") while kube-proxy had not synced them.
func (e *env) waitProxied(t *testing.T) {
	t.Helper()
	svc, err := e.Client.CoreV1().Services(releaseNS).Get(e.ctx, release+"-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "kube-proxy's rules from the webhook Service to its ready endpoints", time.Minute, func(ctx context.Context) (bool, error) {
		slices, err := e.Client.DiscoveryV1().EndpointSlices(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + release + "-webhook"})
		if err != nil {
			return false, err
		}
		var addrs []string
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					addrs = append(addrs, ep.Addresses...)
				}
			}
		}
		if len(addrs) == 0 {
			return false, nil
		}
		return e.ProxiesService(svc.Spec.ClusterIP, addrs...)
	})
}

func caInjected(cfg admissionregistrationv1.MutatingWebhookConfiguration) bool {
	for _, w := range cfg.Webhooks {
		if len(w.ClientConfig.CABundle) == 0 {
			return false
		}
	}
	return len(cfg.Webhooks) > 0
}

// webhookPods are the webhook's pods.
func (e *env) webhookPods(t *testing.T) []corev1.Pod {
	t.Helper()
	list, err := e.Client.CoreV1().Pods(releaseNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitWebhookReady waits until the Deployment has n updated, ready
// replicas and nothing else (no old or terminating pod), and the Service's
// endpoints list exactly n ready addresses.
func (e *env) waitWebhookReady(t *testing.T, n int32) {
	t.Helper()
	e.waitFor(t, fmt.Sprintf("%d ready webhook replicas behind the Service", n), 5*time.Minute, func(ctx context.Context) (bool, error) {
		deps, err := e.Client.AppsV1().Deployments(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
		if err != nil || len(deps.Items) != 1 {
			return false, err
		}
		d := deps.Items[0]
		if !rolledOut(d, n) {
			return false, nil
		}
		pods := e.webhookPods(t)
		if int32(len(pods)) != n {
			return false, nil
		}
		slices, err := e.Client.DiscoveryV1().EndpointSlices(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + release + "-webhook"})
		if err != nil {
			return false, err
		}
		ready := int32(0)
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					ready++
				}
			}
		}
		return ready == n, nil
	})
}

func rolledOut(d appsv1.Deployment, n int32) bool {
	s := d.Status
	return d.Generation == s.ObservedGeneration && s.Replicas == n && s.UpdatedReplicas == n && s.ReadyReplicas == n && s.AvailableReplicas == n
}

// waitFor polls cond every 200 ms until it holds, failing the test after
// timeout with the last error.
func (e *env) waitFor(t testing.TB, what string, timeout time.Duration, cond func(context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

// namespace creates a namespace, opted in with `kubectl label namespace`
// as a namespace owner would when optIn.
func (e *env) namespace(t *testing.T, name string, optIn bool) {
	t.Helper()
	e.kubectl(t, "create", "namespace", name)
	if optIn {
		e.kubectl(t, "label", "namespace", name, "token-projector.io/inject=enabled")
	}
	// The controller-manager makes each namespace's default account.
	e.waitFor(t, "the default ServiceAccount of "+name, time.Minute, func(ctx context.Context) (bool, error) {
		_, err := e.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}
