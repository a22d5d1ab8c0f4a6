// Package publish releases the working tree as make release does, into an
// OCI registry served on loopback (go-containerregistry's pkg/registry),
// signed with a cosign-format key made for the test: test/release checks
// what a release holds, the cluster tier installs one and upgrades to the
// next.
package publish

import (
	"context"
	"crypto/elliptic"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/token-projector/token-projector/internal/image"
	"github.com/token-projector/token-projector/internal/release"
)

// NewRegistry is an empty in-memory OCI registry.
func NewRegistry() http.Handler {
	return registry.New(registry.Logger(log.New(io.Discard, "", 0)))
}

// Serve serves h on 127.0.0.1 until the test ends and returns its
// host:port (plain HTTP, which go-containerregistry uses for loopback by
// itself, helm with --plain-http and containerd by itself for a port
// other than 443).
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// password encrypts the test's private key; make release reads it from
// COSIGN_PASSWORD, as cosign does.
const password = "release-test"

// Publisher releases the working tree at Root into Registry (host/path),
// every release signed with one key.
type Publisher struct {
	Root     string
	Helm     string
	Registry string
	// PublicKey is the path of the signing key's public half (cosign.pub).
	PublicKey string
	signer    release.Signer
}

// NewPublisher makes a cosign-format key pair (the private key encrypted
// with COSIGN_PASSWORD, as cosign generate-key-pair writes it) and loads
// it as make release does.
func NewPublisher(t testing.TB, root, helm, registry string) *Publisher {
	t.Helper()
	dir := t.TempDir()
	privPEM, pubPEM, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte(password)))
	if err != nil {
		t.Fatal(err)
	}
	priv, pub := filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(priv, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COSIGN_PASSWORD", password)
	signer, err := release.LoadKeySigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &Publisher{Root: root, Helm: helm, Registry: registry, PublicKey: pub, signer: signer}
}

// Release publishes version (v0.1.0) as make release does, on the local
// static base (no registry outside the test is reachable).
func (p *Publisher) Release(ctx context.Context, t testing.TB, version string) *release.Result {
	t.Helper()
	res, err := release.Run(ctx, release.Config{
		Root: p.Root, Version: version, Registry: p.Registry, Base: image.LocalBase,
		SourceURL: "https://example.com/token-projector", Helm: p.Helm, Signer: p.signer, Out: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Chart is the releases' chart as helm installs it:
// oci://<Registry>/charts/token-projector (release.ChartRepository).
func (p *Publisher) Chart(t testing.TB) string {
	t.Helper()
	repo, err := release.ChartRepository(p.Registry, "token-projector")
	if err != nil {
		t.Fatal(err)
	}
	return "oci://" + repo.Name()
}

// Verifier is the release key's verifier, as cosign verify --key loads it.
func (p *Publisher) Verifier(t testing.TB) signature.Verifier {
	t.Helper()
	v, err := release.LoadVerifier(p.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
