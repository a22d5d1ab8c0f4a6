package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/token-projector/token-projector/test/testenv"
)

// writeKubeconfig writes a kubeconfig file for cfg (client certificate
// authentication, as envtest's users have).
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// projectSecret writes a Secret's data into dir the way the kubelet updates
// a Secret volume: the files go into a fresh hidden directory, then the
// ..data symlink that every key's symlink points through is swapped
// atomically, and the previous directory is removed. The webhook sees what
// it would see in a pod when cert-manager renews the Secret.
func projectSecret(dir string, data map[string][]byte) error {
	previous, _ := os.Readlink(filepath.Join(dir, "..data"))
	payload, err := os.MkdirTemp(dir, "..payload-")
	if err != nil {
		return err
	}
	if err := os.Chmod(payload, 0o755); err != nil {
		return err
	}
	for name, b := range data {
		if err := os.WriteFile(filepath.Join(payload, name), b, 0o644); err != nil {
			return err
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(payload), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range data {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	if previous != "" {
		return os.RemoveAll(filepath.Join(dir, previous))
	}
	return nil
}

// webhookProcess is the webhook binary running as a child process.
type webhookProcess struct {
	cmd    *exec.Cmd
	exited chan error
	addr   string // host:port of the webhook server
}

// startWebhook runs the webhook binary with args and waits until /readyz
// (certificate loaded, caches synced) answers 200 on healthAddr.
func startWebhook(t *testing.T, args []string, addr, healthAddr string) *webhookProcess {
	t.Helper()
	cmd := exec.Command(webhookBinary, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &webhookProcess{cmd: cmd, exited: make(chan error, 1), addr: addr}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	if err := testenv.WaitReady(context.Background(), "http://"+healthAddr+"/readyz", time.Minute, p.exited); err != nil {
		t.Fatalf("webhook %v: %v", args, err)
	}
	return p
}

// running reports whether the process is still the one started.
func (p *webhookProcess) running() bool {
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *webhookProcess) stop(t *testing.T) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Errorf("webhook exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("webhook did not stop within 30s of SIGTERM")
	}
}

// servedSerial dials the webhook, verifying it against roots as
// kube-apiserver does, and returns the serial of the certificate it serves.
func servedSerial(addr string, roots *x509.CertPool) (*big.Int, error) {
	host, _, _ := strings.Cut(addr, ":")
	d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s served no certificate", addr)
	}
	return certs[0].SerialNumber, nil
}

// overrideArgs replaces the value of each --flag in overrides and appends
// the ones args lacks, keeping everything else the chart passes.
func overrideArgs(args []string, overrides map[string]string) []string {
	out := make([]string, 0, len(args)+len(overrides))
	seen := map[string]bool{}
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if v, ok := overrides[name]; ok {
			a = "--" + name + "=" + v
			seen[name] = true
		}
		out = append(out, a)
	}
	for name, v := range overrides {
		if !seen[name] {
			out = append(out, "--"+name+"="+v)
		}
	}
	return out
}
