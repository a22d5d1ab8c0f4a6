package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	tpadmission "github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/test/bench/loadgen"
	"github.com/token-projector/token-projector/test/testenv"
)

// server is a process under measurement: the webhook or the ceiling.
type server struct {
	name string
	cmd  *exec.Cmd
	// exited is closed when the process has ended.
	exited chan struct{}
	// done receives the process's exit once, for readiness checks.
	done chan error
	// url is where admissions are posted.
	url string
	// metrics is the Prometheus endpoint (the webhook only); pprof is the
	// net/http/pprof root.
	metrics, pprof string
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop asks the process to finish (SIGTERM) and waits, then kills it. It
// may be called again.
func (s *server) stop() {
	if s == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func start(name string, cmd *exec.Cmd, logFile string) (*server, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, exited: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		log.Close()
		s.done <- err
		close(s.exited)
	}()
	return s, nil
}

// portClash is what a server logs when a port given to it was taken
// between the probe (loopback) and its own bind: the probe cannot hold the
// port for the child, and the machine is shared.
const portClash = "address already in use"

// startAttempts bounds the starts of one server.
const startAttempts = 5

// withFreePorts runs start, which starts a server on ports it probes free
// and writes the server's log to logFile, again on fresh ports while the
// server failed for want of a port.
func withFreePorts(name, logFile string, start func() (*server, error)) (*server, error) {
	for attempt := 1; ; attempt++ {
		s, err := start()
		if err == nil {
			return s, nil
		}
		log, _ := os.ReadFile(logFile)
		if attempt == startAttempts || !strings.Contains(string(log), portClash) {
			return nil, err
		}
		fmt.Printf("%s: a port was taken before it could bind it (attempt %d); starting it on fresh ports\n", name, attempt)
	}
}

func loopback() (string, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

// startWebhook runs the webhook binary as the chart would, with the shipped
// RBAC's identity, the envtest serving certificate, and serving, metrics
// and pprof on loopback ports, and waits until it is ready (certificate
// loaded, caches synced).
func startWebhook(ctx context.Context, env *testenv.Env, c config) (*server, error) {
	kubeconfig := filepath.Join(c.outDir, "webhook.kubeconfig")
	if err := writeKubeconfig(env.WebhookConfig, kubeconfig); err != nil {
		return nil, err
	}
	logFile := filepath.Join(c.outDir, "webhook.log")
	return withFreePorts("webhook", logFile, func() (*server, error) { return startWebhookOnce(ctx, env, c, kubeconfig, logFile) })
}

func startWebhookOnce(ctx context.Context, env *testenv.Env, c config, kubeconfig, logFile string) (*server, error) {
	serving, err := loopback()
	if err != nil {
		return nil, err
	}
	metrics, err := loopback()
	if err != nil {
		return nil, err
	}
	health, err := loopback()
	if err != nil {
		return nil, err
	}
	pprof, err := loopback()
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(serving)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.webhookBin,
		"--kubeconfig="+kubeconfig,
		"--cert-dir="+env.WebhookInstallOptions.LocalServingCertDir,
		"--webhook-host="+host, "--webhook-port="+port,
		"--metrics-bind-address="+metrics,
		"--health-probe-bind-address="+health,
		"--pprof-bind-address="+pprof,
		// kube-apiserver calls webhooks over HTTP/2 when they offer it; the
		// webhook offers it only when asked. Either way HTTP/1.1 clients
		// fall back to HTTP/1.1, so both protocols are measured.
		"--enable-http2",
	)
	cmd.Env = append(os.Environ(), c.webhookEnv...)
	s, err := start("webhook", cmd, logFile)
	if err != nil {
		return nil, err
	}
	s.url = "https://" + serving + tpadmission.PodsPath
	s.metrics = "http://" + metrics + "/metrics"
	s.pprof = "http://" + pprof + "/debug/pprof"
	if err := testenv.WaitReady(ctx, "http://"+health+"/readyz", time.Minute, s.done); err != nil {
		s.stop()
		return nil, fmt.Errorf("%w (log: %s)", err, logFile)
	}
	return s, nil
}

// startCeiling runs the ceiling binary on the webhook's certificate and
// waits until it answers an AdmissionReview.
func startCeiling(ctx context.Context, env *testenv.Env, c config, probe loadgen.Target) (*server, error) {
	logFile := filepath.Join(c.outDir, "ceiling.log")
	return withFreePorts("ceiling", logFile, func() (*server, error) { return startCeilingOnce(ctx, env, c, probe, logFile) })
}

func startCeilingOnce(ctx context.Context, env *testenv.Env, c config, probe loadgen.Target, logFile string) (*server, error) {
	addr, err := loopback()
	if err != nil {
		return nil, err
	}
	pprof, err := loopback()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.ceilingBin, "--addr="+addr, "--pprof-addr="+pprof,
		"--cert-dir="+env.WebhookInstallOptions.LocalServingCertDir)
	s, err := start("ceiling", cmd, logFile)
	if err != nil {
		return nil, err
	}
	s.url = "https://" + addr + tpadmission.PodsPath
	s.pprof = "http://" + pprof + "/debug/pprof"
	probe.URL = s.url
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := loadgen.Run(ctx, probe, loadgen.Load{Concurrency: 1, MaxRequests: 1})
		if err == nil && res.Errors == 0 {
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("ceiling exited: %w", err)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			if err == nil {
				err = fmt.Errorf("%v", res.ErrorSamples)
			}
			return nil, fmt.Errorf("ceiling not answering: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildBinaries builds what c does not name: the webhook as the Dockerfile
// builds it (testenv.BuildWebhook: CGO_ENABLED=0, -trimpath, -ldflags=-s -w)
// and the ceiling with the same flags, into c.outDir.
func buildBinaries(c *config) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	if c.webhookBin == "" {
		if c.webhookBin, err = testenv.BuildWebhook(root, c.outDir); err != nil {
			return err
		}
	}
	if c.ceilingBin == "" {
		c.ceilingBin = filepath.Join(c.outDir, "ceiling")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", c.ceilingBin, "./test/bench/cmd/ceiling")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building the ceiling: %w\n%s", err, out)
		}
	}
	return nil
}

// writeKubeconfig writes cfg (a client-certificate identity) as the
// kubeconfig the webhook binary is given.
func writeKubeconfig(cfg *rest.Config, file string) error {
	host := cfg.Host
	if u, err := url.Parse(host); err != nil || u.Scheme == "" {
		host = "https://" + host
	}
	if len(cfg.CertData) == 0 && cfg.BearerToken == "" {
		return errors.New("the webhook identity has neither a client certificate nor a token")
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["bench"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["webhook"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "webhook"}
	kc.CurrentContext = "bench"
	return clientcmd.WriteToFile(*kc, file)
}
