package release

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// What cosign writes and reads for a signature made with a key: an image
// tagged sha256-<hex>.sig beside the signed manifest, one layer per
// signature holding the simple-signing payload (sigstore's payload.Cosign),
// its signature in the layer's annotation. `cosign verify --key` reads it.
const (
	simpleSigningMediaType types.MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	signatureAnnotation    string          = "dev.cosignproject.cosign/signature"
)

// cryptoHash is the digest cosign signs with ECDSA P-256 keys.
const cryptoHash = crypto.SHA256

// Signer signs a manifest the registry holds, by digest.
type Signer interface {
	Sign(ctx context.Context, d name.Digest) error
}

// KeySigner signs with a private key, in cosign's format, through
// sigstore's signature package: nothing of the cryptography is ours.
type KeySigner struct {
	Signer signature.Signer
	Remote []remote.Option
}

// LoadKeySigner reads a PEM private key: cosign's own (cosign
// generate-key-pair, decrypted with the password in COSIGN_PASSWORD) or an
// unencrypted PKCS#8, SEC 1 or PKCS#1 key.
func LoadKeySigner(path string, opts ...remote.Option) (*KeySigner, error) {
	pass := func(bool) ([]byte, error) { return []byte(os.Getenv("COSIGN_PASSWORD")), nil }
	s, err := signature.LoadSignerFromPEMFile(path, cryptoHash, pass)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return &KeySigner{Signer: s, Remote: opts}, nil
}

// Sign pushes the signature image of d, replacing any earlier one.
func (k *KeySigner) Sign(ctx context.Context, d name.Digest) error {
	body, err := json.Marshal(payload.Cosign{Image: d})
	if err != nil {
		return err
	}
	sig, err := k.Signer.SignMessage(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("signing %s: %w", d, err)
	}
	img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
		mutate.Addendum{
			Layer:       static.NewLayer(body, simpleSigningMediaType),
			Annotations: map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
		})
	if err != nil {
		return err
	}
	if err := remote.Write(signatureTag(d), img, append([]remote.Option{remote.WithContext(ctx)}, k.Remote...)...); err != nil {
		return fmt.Errorf("pushing the signature of %s: %w", d, err)
	}
	return nil
}

// CosignCLI signs with the cosign command: keyless in a hosted CI, where
// cosign gets an identity token from the CI's OIDC provider, a certificate
// from Fulcio and records the signature in Rekor.
type CosignCLI struct {
	Path   string
	Stdout io.Writer
}

// Sign runs `cosign sign --yes d`.
func (c CosignCLI) Sign(ctx context.Context, d name.Digest) error {
	cmd := exec.CommandContext(ctx, c.Path, "sign", "--yes", d.String())
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cosign sign %s: %w", d, err)
	}
	return nil
}

// LoadVerifier reads a PEM public key (cosign.pub).
func LoadVerifier(path string) (signature.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return signature.LoadVerifier(pub, cryptoHash)
}

// Verify checks, as `cosign verify --key` does, that a signature of d made
// by the key of v is in the registry: the payload's signature verifies
// (sigstore's verifier) and the payload names d's digest.
func Verify(ctx context.Context, d name.Digest, v signature.Verifier, opts ...remote.Option) error {
	img, err := remote.Image(signatureTag(d), append([]remote.Option{remote.WithContext(ctx)}, opts...)...)
	if err != nil {
		return fmt.Errorf("no signature of %s: %w", d, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var errs []error
	for i, l := range m.Layers {
		if l.MediaType != simpleSigningMediaType || i >= len(layers) {
			continue
		}
		body, err := readLayer(layers[i])
		if err != nil {
			return err
		}
		err = verifyPayload(d, v, body, l.Annotations[signatureAnnotation])
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return fmt.Errorf("the signature image of %s holds no signature", d)
	}
	return fmt.Errorf("no valid signature of %s: %w", d, errors.Join(errs...))
}

func readLayer(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	return io.ReadAll(rc)
}

// verifyPayload checks one signature (base64) of body, then that body, a
// simple-signing payload, names d's digest.
func verifyPayload(d name.Digest, v signature.Verifier, body []byte, sigB64 string) error {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("a signature layer without a base64 signature")
	}
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("the signature does not verify with the key: %w", err)
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("the signed payload: %w", err)
	}
	if p.Critical.Type != payload.CosignSignatureType || p.Critical.Image.DockerManifestDigest != d.DigestStr() {
		return fmt.Errorf("the signed payload names %q of type %q, not %s", p.Critical.Image.DockerManifestDigest, p.Critical.Type, d.DigestStr())
	}
	return nil
}

// signatureTag is where cosign keeps the signatures of d.
func signatureTag(d name.Digest) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
}
