// Package ceiling is the yardstick of the benchmarks: the least work an
// admission webhook can do. It serves HTTPS with the certificate and TLS
// settings of controller-runtime's webhook server, decodes each
// AdmissionReview with encoding/json and answers "allowed" with the request's
// UID and no patch. Every figure of the webhook is reported as a ratio to it.
package ceiling

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Handler answers every AdmissionReview with allowed and no patch.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "malformed AdmissionReview", http.StatusBadRequest)
			return
		}
		out := admissionv1.AdmissionReview{
			TypeMeta: review.TypeMeta,
			Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true},
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&out)
	})
}

// Listen opens the TLS listener as the webhook's server does with
// --enable-http2: TLS 1.2 at least, ALPN offering h2 (HTTP/1.1 clients fall
// back), the certificate served from certDir/tls.crt and tls.key through a
// certwatcher.
func Listen(ctx context.Context, addr, certDir string) (net.Listener, error) {
	watcher, err := certwatcher.New(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		return nil, err
	}
	go func() { _ = watcher.Start(ctx) }()
	cfg := &tls.Config{NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12, GetCertificate: watcher.GetCertificate}
	return tls.Listen("tcp", addr, cfg)
}

// Serve serves Handler on l until ctx is done, with the http.Server settings
// of controller-runtime's webhook server.
func Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		BaseContext:       func(net.Listener) context.Context { return ctx },
		Handler:           Handler(),
		MaxHeaderBytes:    1 << 20,
		IdleTimeout:       90 * time.Second,
		ReadHeaderTimeout: 32 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
