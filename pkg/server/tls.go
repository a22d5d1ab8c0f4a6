package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// tlsOptions hardens the webhook server's TLS: HTTP/1.1 only unless
// o.EnableHTTP2, and with o.ClientCA, a client certificate signed by that CA
// required of every caller. Anyone on the pod network can reach the port;
// without a client CA, what keeps a forged review harmless is that opt-in is
// read from the webhook's own cache and every write goes to the request's
// namespace.
func tlsOptions(o Options) ([]func(*tls.Config), error) {
	var opts []func(*tls.Config)
	opts = append(opts, func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 })
	if !o.EnableHTTP2 {
		opts = append(opts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	if o.ClientCA == "" {
		return opts, nil
	}
	ca := &clientCA{file: o.ClientCA}
	if err := ca.load(); err != nil {
		return nil, fmt.Errorf("--client-ca: %w", err)
	}
	opts = append(opts, func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = ca.current()
		base := c // the server sets GetCertificate on it after the options run
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := base.Clone()
			cfg.GetConfigForClient = nil
			cfg.ClientCAs = ca.current()
			return cfg, nil
		}
	})
	return opts, nil
}

// clientCA is the client CA bundle, re-read when the file changes (at most
// once a second), so that rotating the CA needs no restart. A bundle that
// does not parse (a write in progress) keeps the previous one.
type clientCA struct {
	file string

	mu      sync.Mutex
	pool    *x509.CertPool
	raw     []byte
	checked time.Time
}

const clientCARecheck = time.Second

func (c *clientCA) load() error {
	raw, err := os.ReadFile(c.file)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return fmt.Errorf("%s holds no PEM certificate", c.file)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pool, c.raw, c.checked = pool, raw, time.Now()
	return nil
}

func (c *clientCA) current() *x509.CertPool {
	c.mu.Lock()
	stale := time.Since(c.checked) > clientCARecheck
	pool, raw := c.pool, c.raw
	if stale {
		c.checked = time.Now()
	}
	c.mu.Unlock()
	if !stale {
		return pool
	}
	if b, err := os.ReadFile(c.file); err == nil && !bytes.Equal(b, raw) {
		if err := c.load(); err != nil {
			logf.Log.WithName("client-ca").Error(err, "Keeping the previous client CA")
		} else {
			logf.Log.WithName("client-ca").Info("Reloaded client CA", "file", c.file)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pool
}

// servingChecker is the webhook-serving readiness check. The stock one
// completes a TLS handshake without a client certificate; with a client CA
// the server side of that handshake fails and logs an error on every probe
// (and under TLS 1.2 the probe itself would fail), so it only connects: the
// listener is open once the server has started, with its certificate loaded.
func servingChecker(srv webhook.Server, o Options) healthz.Checker {
	if o.ClientCA == "" {
		return srv.StartedChecker()
	}
	addr := net.JoinHostPort(o.WebhookHost, strconv.Itoa(o.WebhookPort))
	return func(*http.Request) error {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return conn.Close()
	}
}
