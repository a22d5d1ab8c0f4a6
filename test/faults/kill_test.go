package faults

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/test/testenv"
)

// webhookProcess is the real binary, built from ./cmd/webhook, running
// against the test's kube-apiserver as the webhook user.
type webhookProcess struct {
	cmd     *exec.Cmd
	exited  chan error
	metrics string
	readyz  string
}

// startProcess runs the binary until it is ready (certificates loaded,
// caches synced); extra flags override the defaults.
func startProcess(t *testing.T, bin, kubeconfig, logFile string, extra ...string) *webhookProcess {
	t.Helper()
	healthPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metricsPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	p := &webhookProcess{exited: make(chan error, 1), metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		readyz: fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)}
	p.cmd = exec.Command(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--cert-dir", certs.dir,
		"--webhook-host", env.WebhookInstallOptions.LocalServingHost,
		"--webhook-port", strconv.Itoa(env.WebhookInstallOptions.LocalServingPort),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", healthPort),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"--zap-log-level", "error",
	}, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { p.kill() })
	if err := testenv.WaitReady(context.Background(), p.readyz, time.Minute, p.exited); err != nil {
		t.Fatalf("%v (log: %s)", err, logFile)
	}
	return p
}

// kill sends SIGKILL, as an OOM kill or a node failure would, and waits for
// the process to go. It reports whether the process was still running.
func (p *webhookProcess) kill() bool {
	if p.cmd.ProcessState != nil {
		return false
	}
	_ = p.cmd.Process.Kill()
	err := <-p.exited // "signal: killed"
	return err != nil
}

// counter reads a counter of the process's own /metrics, summed over the
// series whose text contains match.
func (p *webhookProcess) counter(t *testing.T, name, match string) float64 {
	t.Helper()
	resp, err := http.Get(p.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		total += v
	}
	return total
}

// buildBinary builds the webhook binary into a test directory and writes
// the webhook user's kubeconfig beside it.
func buildBinary(t *testing.T) (dir, bin, kubeconfig string) {
	t.Helper()
	dir = t.TempDir()
	bin, err := testenv.WebhookBinary(env.Root, dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, bin, webhookKubeconfig(t, dir)
}

// webhookKubeconfig writes a kubeconfig for the webhook user.
func webhookKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	c := env.WebhookConfig
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["webhook"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "webhook"}
	kc.CurrentContext = "test"
	path := filepath.Join(dir, "webhook.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKillInBurst SIGKILLs the webhook binary in the middle of a burst of
// pods naming new accounts (some ensures are cut between two creates), and
// deletes an admitted pod's Role while it is down. After a restart: every
// admitted pod's identity is complete (the reconciler restores the Role, by
// the process's own count), every refused pod is admitted on retry, and in
// the end there is exactly one ServiceAccount, Role and RoleBinding per
// account and every pod is mutated exactly once.
func TestKillInBurst(t *testing.T) {
	const (
		namespaces = 3
		accounts   = 8 // per namespace
		podsEach   = 3 // per account
		workers    = 12
		killAfter  = 15 // admitted pods
	)
	ctx := context.Background()
	dir, bin, kubeconfig := buildBinary(t)
	logFile := filepath.Join(dir, "webhook.log")
	proc := startProcess(t, bin, kubeconfig, logFile)
	waitAdmitting(t)

	type job struct{ ns, sa string }
	var jobs []job
	var nss []string
	for range namespaces {
		ns := namespace(t)
		nss = append(nss, ns)
		for a := range accounts {
			for range podsEach {
				jobs = append(jobs, job{ns, fmt.Sprintf("burst-%d", a)})
			}
		}
	}
	queue := make(chan job, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)

	var admittedN atomic.Int64
	var mu sync.Mutex
	var refused []job
	killed := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				if err := env.Admin.Create(ctx, pod(j.ns, j.sa)); err != nil {
					mu.Lock()
					refused = append(refused, j)
					mu.Unlock()
					continue
				}
				if admittedN.Add(1) == killAfter {
					once.Do(func() { proc.kill(); close(killed) })
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("the burst finished (%d admitted) before the kill", admittedN.Load())
	}
	if len(refused) == 0 {
		t.Fatalf("no admission failed: the kill came after the burst")
	}
	t.Logf("killed after %d admissions; %d refused while down", admittedN.Load(), len(refused))

	// While it is down, an admitted pod's Role is lost.
	var pods corev1.PodList
	if err := env.Admin.List(ctx, &pods, client.InNamespace(nss[0])); err != nil {
		t.Fatal(err)
	}
	var lost *corev1.Pod
	for i := range pods.Items {
		if strings.HasPrefix(pods.Items[i].Spec.ServiceAccountName, "burst-") {
			lost = &pods.Items[i]
			break
		}
	}
	if lost == nil {
		t.Fatalf("no admitted burst pod in %s", nss[0])
	}
	if err := env.Admin.Delete(ctx, testenv.Identity(lost.Namespace, lost.Spec.ServiceAccountName)[1]); err != nil {
		t.Fatal(err)
	}

	proc = startProcess(t, bin, kubeconfig, logFile)
	waitAdmitting(t)
	testenv.WaitFor(t, "every admitted pod's identity is complete", 30*time.Second, func() bool {
		for _, ns := range nss {
			var pods corev1.PodList
			if err := env.Admin.List(ctx, &pods, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
			for _, p := range pods.Items {
				if sa := p.Spec.ServiceAccountName; strings.HasPrefix(sa, "burst-") && !complete(t, ns, sa) {
					return false
				}
			}
		}
		return true
	})
	if got := proc.counter(t, "token_projector_restored_total", `kind="Role"`); got < 1 {
		t.Errorf("the restarted process restored %v Roles by its own count, want at least the lost one", got)
	}

	for _, j := range refused {
		if err := env.Admin.Create(ctx, pod(j.ns, j.sa)); err != nil {
			t.Errorf("retry in %s for %s: %v", j.ns, j.sa, err)
		}
	}

	for _, ns := range nss {
		var pods corev1.PodList
		if err := env.Admin.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		burst := 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if !strings.HasPrefix(p.Spec.ServiceAccountName, "burst-") {
				continue
			}
			burst++
			if !testenv.MutatedOnce(p) {
				t.Errorf("pod %s/%s is not mutated exactly once", ns, p.Name)
			}
		}
		if burst != accounts*podsEach {
			t.Errorf("%s: %d burst pods, want %d", ns, burst, accounts*podsEach)
		}
		for _, list := range []client.ObjectList{&corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{}} {
			if err := env.Admin.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{rbac.LabelManagedBy: rbac.ManagedBy}); err != nil {
				t.Fatal(err)
			}
			if n := len(managedNames(list)); n != accounts {
				t.Errorf("%s: %d managed %T, want %d: %v", ns, n, list, accounts, managedNames(list))
			}
		}
		for a := range accounts {
			if !complete(t, ns, fmt.Sprintf("burst-%d", a)) {
				t.Errorf("%s: identity burst-%d incomplete", ns, a)
			}
		}
	}
}

func managedNames(list client.ObjectList) []string {
	var names []string
	switch l := list.(type) {
	case *corev1.ServiceAccountList:
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case *rbacv1.RoleList:
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case *rbacv1.RoleBindingList:
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	}
	return names
}
