package loadgen_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/token-projector/token-projector/test/bench/ceiling"
	"github.com/token-projector/token-projector/test/bench/fixture"
	"github.com/token-projector/token-projector/test/bench/loadgen"
)

// TestLoadAgainstTheCeiling is the smoke test of make bench's machinery (it
// asserts no timing): the ceiling answers realistic reviews over HTTP/2 and
// HTTP/1.1, the load generator counts every request, checks every answer and
// reports ordered latencies, and a failing check is counted as an error.
func TestLoadAgainstTheCeiling(t *testing.T) {
	dir, caPEM := selfSigned(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := ceiling.Listen(ctx, "127.0.0.1:0", dir)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ceiling.Serve(ctx, l) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ceiling: %v", err)
		}
	}()

	bodies, err := fixture.Bodies("smoke", "demo", 16, func(int) string { return "checkout" })
	if err != nil {
		t.Fatal(err)
	}
	uids := make([]types.UID, len(bodies))
	for i := range uids {
		uids[i] = fixture.UID("smoke", i)
	}
	noPatch := func(r *loadgen.Answer) error {
		if len(r.Patch) > 0 {
			return errors.New("patched")
		}
		return nil
	}
	url := "https://" + l.Addr().String() + "/mutate-pods"
	for _, proto := range []loadgen.Protocol{loadgen.HTTP2, loadgen.HTTP1} {
		t.Run(string(proto), func(t *testing.T) {
			hc, err := loadgen.NewClient(proto, caPEM, 8)
			if err != nil {
				t.Fatal(err)
			}
			target := loadgen.Target{URL: url, Client: hc, Protocol: proto, Bodies: bodies, UIDs: uids, Expect: noPatch}
			const n = 200
			res, err := loadgen.Run(ctx, target, loadgen.Load{Concurrency: 8, MaxRequests: n, Duration: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != n || res.Errors != 0 || len(res.Latencies) != n {
				t.Fatalf("requests %d, errors %d %v, latencies %d; want %d, 0, %d", res.Requests, res.Errors, res.ErrorSamples, len(res.Latencies), n, n)
			}
			p50, p99, worst := res.Quantile(.5), res.Quantile(.99), res.Max()
			if p50 <= 0 || p50 > p99 || p99 > worst || res.Throughput() <= 0 {
				t.Errorf("p50 %s, p99 %s, max %s, %f req/s: not ordered", p50, p99, worst, res.Throughput())
			}

			// A check that fails is an error of the run, with a sample.
			target.Expect = func(*loadgen.Answer) error { return errors.New("want a patch") }
			res, err = loadgen.Run(ctx, target, loadgen.Load{Concurrency: 2, MaxRequests: 10})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 10 || res.Errors != 10 || len(res.ErrorSamples) == 0 || len(res.Latencies) != 0 {
				t.Errorf("failing check: %d requests, %d errors %v, %d latencies", res.Requests, res.Errors, res.ErrorSamples, len(res.Latencies))
			}
		})
	}

	// An answer over another protocol than the target's is an error.
	hc, err := loadgen.NewClient(loadgen.HTTP1, caPEM, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := loadgen.Run(ctx, loadgen.Target{URL: url, Client: hc, Protocol: loadgen.HTTP2, Bodies: bodies, UIDs: uids},
		loadgen.Load{Concurrency: 1, MaxRequests: 3})
	if err != nil || res.Errors != 3 {
		t.Errorf("HTTP/1.1 answers to an HTTP/2 target: %d errors of %d (%v)", res.Errors, res.Requests, err)
	}
}

func TestMerge(t *testing.T) {
	a := loadgen.Result{Requests: 2, Errors: 1, Elapsed: time.Second, Latencies: []time.Duration{3, 5}}
	b := loadgen.Result{Requests: 3, Elapsed: time.Second, Latencies: []time.Duration{1, 2, 4}}
	m := loadgen.Merge(a, b)
	if m.Requests != 5 || m.Errors != 1 || m.Elapsed != 2*time.Second || m.Throughput() != 2.5 {
		t.Errorf("merged: %+v, %f req/s", m, m.Throughput())
	}
	if m.Quantile(0.5) != 3 || m.Quantile(0.8) != 4 || m.Max() != 5 {
		t.Errorf("quantiles of %v: p50 %d, p80 %d, max %d", m.Latencies, m.Quantile(.5), m.Quantile(.8), m.Max())
	}
}

func TestUnboundedRunRefused(t *testing.T) {
	if _, err := loadgen.Run(context.Background(), loadgen.Target{Bodies: [][]byte{{}}, UIDs: []types.UID{""}}, loadgen.Load{Concurrency: 1}); err == nil {
		t.Error("a run with neither a duration nor a count was accepted")
	}
}

// selfSigned writes a self-signed serving certificate for 127.0.0.1 as
// tls.crt and tls.key into a temporary directory and returns it and the
// certificate's PEM.
func selfSigned(t *testing.T) (string, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ceiling"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, certPEM
}
