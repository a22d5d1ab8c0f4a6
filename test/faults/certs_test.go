package faults

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tpadmission "github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/test/testenv"
)

// webhookAddr is where the webhook serves.
func webhookAddr() string {
	return env.WebhookInstallOptions.LocalServingHost + ":" + strconv.Itoa(env.WebhookInstallOptions.LocalServingPort)
}

func servingPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(servingCA.cert)
	return pool
}

// servedSerial is the serial number of the certificate the webhook serves
// on a new connection.
func servedSerial(clientCert *tls.Certificate) (*big.Int, error) {
	cfg := &tls.Config{RootCAs: servingPool(), MinVersion: tls.VersionTLS12}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	conn, err := tls.Dial("tcp", webhookAddr(), cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// TestCertRotationUnderLoad rotates the serving certificate four times while
// four clients create pods through kube-apiserver without pause: three
// rotations swap the files the way a Secret volume is updated, one rewrites
// them in place (certificate first, so that for a moment they do not match).
// Each new certificate must be served within the deadline, and not one
// admission may fail.
func TestCertRotationUnderLoad(t *testing.T) {
	startWebhook(t, serverOptions(t, nil))
	ns := namespace(t)

	ctx, stop := context.WithCancel(context.Background())
	var admitted, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				p := pod(ns, fmt.Sprintf("rotation-%d", (w+i)%6))
				if err := env.Admin.Create(context.Background(), p); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				if !testenv.MutatedOnce(p) {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("pod %s not mutated", p.Name))
					continue
				}
				admitted.Add(1)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	for i, inPlace := range []bool{false, false, true, false} {
		next, err := servingCA.serving()
		if err != nil {
			t.Fatal(err)
		}
		if inPlace {
			err = certs.overwrite(next)
		} else {
			err = certs.swap(next)
		}
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, fmt.Sprintf("rotation %d is served", i+1), 30*time.Second, func() bool {
			s, err := servedSerial(nil)
			return err == nil && s.Cmp(next.serial) == 0
		})
		// Some load on the new certificate before the next rotation.
		target := admitted.Load() + 10
		testenv.WaitFor(t, "admissions continue on the new certificate", 30*time.Second, func() bool {
			return admitted.Load() >= target || failed.Load() > 0
		})
	}
	stop()
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d admissions failed during rotation; first: %v", n, firstErr.Load())
	}
	if n := admitted.Load(); n < 40 {
		t.Errorf("only %d admissions during four rotations", n)
	}
}

// TestClientCA runs the webhook with --client-ca: kube-apiserver, which
// presents a certificate clientCA signed, is served; a caller on the pod
// network without a certificate, or with one from another CA, cannot even
// complete the TLS handshake; replacing the CA file takes effect without a
// restart.
func TestClientCA(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "client-ca.crt")
	if err := os.WriteFile(caFile, clientCA.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	o := serverOptions(t, nil)
	o.ClientCA = caFile
	startWebhook(t, o) // waits until pods are admitted through kube-apiserver

	other, err := newCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	valid, forged := clientCert(t, clientCA), clientCert(t, other)
	if err := postReview(nil); err == nil {
		t.Error("a caller without a client certificate was served")
	}
	if err := postReview(&forged); err == nil {
		t.Error("a caller with a certificate from another CA was served")
	}
	if err := postReview(&valid); err != nil {
		t.Errorf("a caller with a certificate the client CA signed: %v", err)
	}

	// Rotate the client CA to the other one: its certificates are accepted,
	// the old CA's are refused, on new connections, without a restart.
	if err := os.WriteFile(caFile, other.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the new client CA is in effect", 30*time.Second, func() bool {
		return postReview(&forged) == nil && postReview(&valid) != nil
	})
}

func clientCert(t *testing.T, c *ca) tls.Certificate {
	t.Helper()
	i, err := c.client("tester")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := i.tlsCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// postReview posts a harmless review (a namespace that does not exist) on
// a new connection, and reports whether a well-formed answer came back.
func postReview(cert *tls.Certificate) error {
	cfg := &tls.Config{RootCAs: servingPool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"probe","kind":{"group":"","version":"v1","kind":"Pod"},` +
		`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"nowhere","operation":"CREATE","userInfo":{},"object":{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":[{"name":"app"}]}}}}`)
	resp, err := hc.Post("https://"+webhookAddr()+tpadmission.PodsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
