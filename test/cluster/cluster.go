// Package cluster runs a real single-node Kubernetes cluster for the tests:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
// with runc and the CNI bridge, and a kubelet, all built from pinned Go
// modules by hack/cluster.sh, all inside a network namespace the test makes
// and a private mount namespace, so that no packet leaves and nothing is
// written to the host's /run, /var/lib or /var/log. Teardown leaves no
// process, mount, cgroup or namespace behind, and says so or fails.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// NodeName is the cluster's one node.
const NodeName = "tp-node"

//go:embed config
var configs embed.FS

// Options configures Start.
type Options struct {
	// Bin is the directory hack/cluster.sh prints.
	Bin string
	// Name names the network namespace (and prefixes the work directory).
	Name string
	// PauseImage is the sandbox image; it must be among Archives.
	PauseImage string
	// Archives are image tarballs (docker-archive) to import before the
	// kubelet starts; pods use them with imagePullPolicy IfNotPresent or
	// Never (no registry is reachable).
	Archives []string
	// Registry, if set, is served inside the namespace before containerd
	// starts, for pods whose images it holds (the webhook's release).
	Registry *Registry
	// Logf reports progress (t.Logf).
	Logf func(format string, args ...any)
}

// Cluster is a running cluster. Stop it with Stop.
type Cluster struct {
	opts    Options
	dir     string
	bin     string
	ns      *netns
	pki     *pki
	holder  *daemon
	daemons []*daemon
	proxy   *proxy
	// registry serves Options.Registry inside the namespace.
	registry *registryServer
	// hostPaths are paths that must not appear on the host, with whether
	// they existed before Start.
	hostPaths map[string]bool
	stopOnce  sync.Once
	stopErr   error
	signals   chan os.Signal

	// Config is a cluster-admin client configuration (through a proxy on
	// the host's loopback).
	Config *rest.Config
	// Kubeconfig is Config as a file, for kubectl and helm.
	Kubeconfig string
	// Client is a clientset of Config.
	Client kubernetes.Interface
}

// Start starts every component and returns once the node is Ready. On
// error, whatever started is torn down.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if missing := Missing(opts.Bin); len(missing) > 0 {
		return nil, fmt.Errorf("the cluster cannot run here: %v", missing)
	}
	dir, err := os.MkdirTemp("", opts.Name+"-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, dir: dir, bin: opts.Bin, hostPaths: map[string]bool{}}
	for _, p := range watchedHostPaths {
		_, err := os.Lstat(p)
		c.hostPaths[p] = err == nil
	}
	// Teardown runs on SIGINT and SIGTERM too.
	c.signals = make(chan os.Signal, 1)
	signal.Notify(c.signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		if s, ok := <-c.signals; ok {
			fmt.Fprintf(os.Stderr, "cluster: %v: tearing down\n", s)
			if err := c.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "cluster:", err)
			} else {
				fmt.Fprintln(os.Stderr, "cluster: torn down; no process, mount, cgroup, namespace or host path left")
			}
			os.Exit(1)
		}
	}()
	defer func() {
		if err != nil {
			if stopErr := c.Stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()
	for _, d := range []string{"logs", "home", "cni/net.d", "pod-logs", "kubelet-plugins", "kcm-flex", "sysctl"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return c, err
		}
	}
	if c.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
		return c, err
	}
	if c.ns, err = createNetns(opts.Name); err != nil {
		return c, err
	}
	if c.proxy, err = startProxy(c.ns, net.JoinHostPort("127.0.0.1", strconv.Itoa(APIServerPort))); err != nil {
		return c, err
	}
	if opts.Registry != nil {
		if c.registry, err = serveRegistry(c.ns, opts.Registry); err != nil {
			return c, fmt.Errorf("serving the registry at %s inside the namespace: %w", opts.Registry.Addr, err)
		}
	}
	if err := c.writeConfigs(); err != nil {
		return c, err
	}
	if err := c.startHolder(ctx); err != nil {
		return c, err
	}
	for _, step := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"etcd", c.startEtcd},
		{"kube-apiserver", c.startAPIServer},
		{"kube-controller-manager and kube-scheduler", c.startControllers},
		{"containerd", c.startContainerd},
		{"images", c.importImages},
		{"kubelet", c.startKubelet},
		// After the node exists: kube-proxy takes its address from it.
		{"kube-proxy", c.startKubeProxy},
	} {
		began := time.Now()
		if err := step.fn(ctx); err != nil {
			return c, fmt.Errorf("%s: %w", step.name, err)
		}
		c.logf("cluster: %s ready in %v", step.name, time.Since(began).Round(10*time.Millisecond))
	}
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// Dir is the cluster's work directory (logs in Dir()/logs).
func (c *Cluster) Dir() string { return c.dir }

// Dial connects to addr inside the cluster's network namespace (a pod's IP,
// for instance).
func (c *Cluster) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.ns.dial(ctx, network, addr)
}

// kubeconfig writes a kubeconfig for the client identity name to server.
func (c *Cluster) kubeconfig(name, server string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: c.pki.path("ca.crt")}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: c.pki.path(name + ".crt"), ClientKey: c.pki.path(name + ".key")}
	cfg.Contexts["cluster"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: name}
	cfg.CurrentContext = "cluster"
	path := c.pki.path(name + ".kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

func (c *Cluster) writeConfigs() error {
	inside := "https://127.0.0.1:" + strconv.Itoa(APIServerPort)
	for _, name := range []string{"controller-manager", "scheduler", "kubelet", "kube-proxy"} {
		if _, err := c.kubeconfig(name, inside); err != nil {
			return err
		}
	}
	var err error
	if c.Kubeconfig, err = c.kubeconfig("admin", "https://"+c.proxy.addr()); err != nil {
		return err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return err
	}
	c.Config.QPS, c.Config.Burst = 100, 200
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	values := map[string]string{
		"Dir": c.dir, "Bin": c.bin, "NodeIP": NodeIP, "PodCIDR": PodCIDR, "PauseImage": c.opts.PauseImage,
	}
	for src, dst := range map[string]string{
		"config/containerd.toml": "containerd.toml",
		"config/kubelet.yaml":    "kubelet.yaml",
		"config/cni.conflist":    "cni/net.d/10-token-projector-test.conflist",
	} {
		tmpl, err := template.ParseFS(configs, src)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, values); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(c.dir, dst), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hostSysctls are host-wide settings the kubelet would rewrite; inside the
// mount namespace, files with the values it wants are bind-mounted over
// them.
var hostSysctls = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
	"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

// holderScript runs as the holder of the namespaces: it hides the host's
// /run, /var/log and /var/lib (hard-coded paths of containerd's shims and
// the kubelet) under tmpfs in its private mount namespace, stubs the
// sysctls, and then waits, reaping whatever it is left as parent of, until
// SIGTERM.
const holderScript = `set -e
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /var/log
mount -t tmpfs -o mode=755 tmpfs /var/lib
cd "$1"
for f in *; do
	k=/proc/sys/$(echo "$f" | tr @ /)
	if [ -e "$k" ]; then mount --bind "$f" "$k"; fi
done
echo ready > "$2"
trap 'exit 0' TERM
while :; do sleep 1 & wait $! || true; done
`

func (c *Cluster) startHolder(ctx context.Context) error {
	stubs := filepath.Join(c.dir, "sysctl")
	for k, v := range hostSysctls {
		// The holder script turns @ back into /.
		if err := os.WriteFile(filepath.Join(stubs, strings.ReplaceAll(k, "/", "@")), []byte(v+"\n"), 0o644); err != nil {
			return err
		}
	}
	ready := filepath.Join(c.dir, "holder.ready")
	// Not `ip netns exec`: it remounts /sys, hiding /sys/fs/cgroup.
	h := &daemon{name: "holder", log: filepath.Join(c.dir, "logs", "holder.log"), done: make(chan struct{})}
	h.cmd = exec.Command("setsid", "nsenter", "--net="+c.ns.path(), "unshare", "--mount", "--propagation", "private", "--",
		"bash", "-c", holderScript, "holder", stubs, ready)
	log, err := os.Create(h.log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }()
	h.cmd.Stdout, h.cmd.Stderr = log, log
	if err := h.cmd.Start(); err != nil {
		return err
	}
	go func() { h.err = h.cmd.Wait(); close(h.done) }()
	c.holder = h
	return c.waitFor(ctx, "the namespace holder", 30*time.Second, func(context.Context) (bool, error) {
		if c.holder.exited() {
			return false, c.holder.failure()
		}
		_, err := os.Stat(ready)
		return err == nil, nil
	})
}

// waitFor polls cond until it holds, a daemon exits, or timeout passes.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, d := range c.daemons {
			if d.exited() {
				return false, d.failure()
			}
		}
		ok, err := cond(ctx)
		if err != nil {
			last = err
		}
		return ok, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("waiting for %s: %w (last: %w)", what, err, last)
	}
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// get reports whether url answers 200 from inside the namespace.
func (c *Cluster) get(ctx context.Context, url string, tlsConfig *tls.Config) (bool, error) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: c.ns.dial, TLSClientConfig: tlsConfig}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	if _, err := c.start("etcd", filepath.Join(c.bin, "etcd"),
		"--name=node", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=node=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	return c.waitFor(ctx, "etcd", time.Minute, func(ctx context.Context) (bool, error) {
		return c.get(ctx, "http://127.0.0.1:2379/health", nil)
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	p := c.pki.path
	if _, err := c.start("kube-apiserver", filepath.Join(c.bin, "kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--secure-port="+strconv.Itoa(APIServerPort), "--advertise-address="+NodeIP,
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--kubelet-client-certificate="+p("apiserver-kubelet-client.crt"), "--kubelet-client-key="+p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		// No --enable-aggregator-routing: webhooks addressed by Service are
		// called at the Service's cluster IP, through kube-proxy, as in
		// every managed cluster.
		"--requestheader-client-ca-file="+p("ca.crt"), "--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+p("front-proxy-client.crt"), "--proxy-client-key-file="+p("front-proxy-client.key"),
		"--v=1"); err != nil {
		return err
	}
	return c.waitFor(ctx, "kube-apiserver /readyz", 2*time.Minute, func(ctx context.Context) (bool, error) {
		err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
		return err == nil, err
	})
}

func (c *Cluster) startControllers(ctx context.Context) error {
	p := c.pki.path
	kc := p("controller-manager.kubeconfig")
	if _, err := c.start("kube-controller-manager", filepath.Join(c.bin, "kube-controller-manager"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1", "--leader-elect=false",
		"--flex-volume-plugin-dir="+filepath.Join(c.dir, "kcm-flex"),
		"--service-account-private-key-file="+p("sa.key"), "--root-ca-file="+p("ca.crt"),
		"--use-service-account-credentials=true",
		"--cluster-signing-cert-file="+p("ca.crt"), "--cluster-signing-key-file="+p("ca.key"),
		"--v=1"); err != nil {
		return err
	}
	ks := p("scheduler.kubeconfig")
	if _, err := c.start("kube-scheduler", filepath.Join(c.bin, "kube-scheduler"),
		"--kubeconfig="+ks, "--authentication-kubeconfig="+ks, "--authorization-kubeconfig="+ks,
		"--bind-address=127.0.0.1", "--leader-elect=false", "--v=1"); err != nil {
		return err
	}
	// The controller-manager works once it has made the default namespace's
	// ServiceAccount; the scheduler once its health endpoint answers.
	if err := c.waitFor(ctx, "kube-controller-manager (the default ServiceAccount)", 2*time.Minute, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	}); err != nil {
		return err
	}
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // its own self-signed certificate; only /healthz is read
	return c.waitFor(ctx, "kube-scheduler /healthz", time.Minute, func(ctx context.Context) (bool, error) {
		return c.get(ctx, "https://127.0.0.1:10259/healthz", insecure)
	})
}

func (c *Cluster) ctr(args ...string) ([]byte, error) {
	return c.run(filepath.Join(c.bin, "ctr"), append([]string{"--address", filepath.Join(c.dir, "containerd", "containerd.sock"), "-n", "k8s.io"}, args...)...)
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	if _, err := c.start("containerd", filepath.Join(c.bin, "containerd"), "--config", filepath.Join(c.dir, "containerd.toml"), "--log-level", "info"); err != nil {
		return err
	}
	return c.waitFor(ctx, "containerd", time.Minute, func(context.Context) (bool, error) {
		_, err := c.ctr("version")
		return err == nil, err
	})
}

func (c *Cluster) importImages(context.Context) error {
	for _, a := range c.opts.Archives {
		if _, err := c.ctr("images", "import", "--platform", "linux/amd64", a); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startKubelet(ctx context.Context) error {
	kubeletDir := filepath.Join(c.dir, "kubelet")
	if _, err := c.start("kubelet", filepath.Join(c.bin, "kubelet"),
		"--config="+filepath.Join(c.dir, "kubelet.yaml"), "--kubeconfig="+c.pki.path("kubelet.kubeconfig"),
		"--root-dir="+kubeletDir, "--cert-dir="+filepath.Join(kubeletDir, "pki"),
		"--hostname-override="+NodeName, "--node-ip="+NodeIP,
		"--v=1"); err != nil {
		return err
	}
	return c.waitFor(ctx, "node "+NodeName+" Ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
}
