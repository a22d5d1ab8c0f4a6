package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// drainServer is controller-runtime's webhook server (the one the manager
// runs) on a free loopback port with a self-signed certificate, serving
// /admit at once and /slow when the test says so.
type drainServer struct {
	srv     webhook.Server
	client  *http.Client
	base    string
	entered chan struct{} // a /slow request has started
	release chan struct{} // lets /slow requests answer
}

func newDrainServer(t *testing.T, d *drain) *drainServer {
	t.Helper()
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	s := &drainServer{
		srv:     webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir}),
		client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
		base:    fmt.Sprintf("https://127.0.0.1:%d", port),
		entered: make(chan struct{}, 1),
		release: make(chan struct{}),
	}
	s.srv.Register("/admit", d.closing(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})))
	s.srv.Register("/slow", d.closing(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.entered <- struct{}{}
		<-s.release
		_, _ = io.WriteString(w, "ok")
	})))
	return s
}

// get says whether the answer asked the caller to close its connection, or
// why the request failed.
func (s *drainServer) get(path string) (closing bool, err error) {
	resp, err := s.client.Get(s.base + path)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.Close, fmt.Errorf("%s answered %s", path, resp.Status)
	}
	return resp.Close, nil
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("%s: not within 30s", what)
	}
}

// TestDrainSequence: after the signal, readiness fails while admissions are
// still answered (each asking the caller to reconnect) for as long as the
// drain delay lasts; then the server stops accepting, and a request that was
// in flight still gets its answer before run returns.
func TestDrainSequence(t *testing.T) {
	d := newDrain()
	delayOver := make(chan time.Time)
	asked := make(chan time.Duration, 1)
	d.after = func(delay time.Duration) <-chan time.Time { asked <- delay; return delayOver }
	s := newDrainServer(t, d)

	signal, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- d.run(signal, 10*time.Second, s.srv.Start) }()
	poll(t, "the server answers", func() bool { _, err := s.get("/admit"); return err == nil })
	if err := d.checker()(nil); err != nil {
		t.Fatalf("not ready before the signal: %v", err)
	}
	slow := make(chan error, 1)
	go func() { _, err := s.get("/slow"); slow <- err }()
	<-s.entered

	cancel() // SIGTERM
	poll(t, "readiness fails", func() bool { return d.checker()(nil) != nil })
	// The delay has not passed (the test holds it): serving goes on.
	for range 20 {
		closing, err := s.get("/admit")
		if err != nil {
			t.Fatalf("an admission during the drain delay failed: %v", err)
		}
		if !closing {
			t.Fatal("a response during the drain does not ask the caller to close its connection")
		}
	}
	if delay := <-asked; delay != 10*time.Second {
		t.Errorf("waited for %s, want the drain delay 10s", delay)
	}
	select {
	case err := <-ran:
		t.Fatalf("run returned during the drain delay: %v", err)
	default:
	}

	close(delayOver)
	poll(t, "the server stops accepting", func() bool { _, err := s.get("/admit"); return err != nil })
	select {
	case err := <-ran:
		t.Fatalf("run returned with a request in flight: %v", err)
	default:
	}
	close(s.release)
	if err := <-slow; err != nil {
		t.Errorf("the in-flight request was cut: %v", err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of the last request")
	}
}

// TestDrainWithoutDelay: a zero delay (tests, development) stops at once,
// without waiting on the clock.
func TestDrainWithoutDelay(t *testing.T) {
	d := newDrain()
	d.after = func(time.Duration) <-chan time.Time { t.Error("waited although the delay is zero"); return nil }
	signal, cancel := context.WithCancel(context.Background())
	cancel()
	stopped := false
	err := d.run(signal, 0, func(ctx context.Context) error { <-ctx.Done(); stopped = true; return nil })
	if err != nil || !stopped {
		t.Errorf("run = %v, manager stopped %v", err, stopped)
	}
	if d.checker()(nil) == nil {
		t.Error("ready after the signal")
	}
}

// TestDrainStartFails: a manager that fails on its own (a port taken, say)
// ends run with its error, signal or not.
func TestDrainStartFails(t *testing.T) {
	d := newDrain()
	boom := errors.New("listen tcp :10250: address already in use")
	for name, signalled := range map[string]bool{"before the signal": false, "during the drain": true} {
		t.Run(name, func(t *testing.T) {
			signal, cancel := context.WithCancel(context.Background())
			defer cancel()
			if signalled {
				cancel()
			}
			// During the drain the delay never ends: only the failure can end run.
			d.after = func(time.Duration) <-chan time.Time { return nil }
			err := d.run(signal, time.Hour, func(ctx context.Context) error {
				if signalled {
					poll(t, "draining", func() bool { return d.checker()(nil) != nil })
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Errorf("run = %v, want %v", err, boom)
			}
		})
	}
}
