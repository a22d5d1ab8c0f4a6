package release

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/token-projector/token-projector/internal/release"
)

// checkSignatures: the index and the chart verify with the release's
// public key; an image pushed unsigned, one signed with another key, and
// the release checked against another key do not.
func checkSignatures(ctx context.Context, t *testing.T, res *release.Result, v signature.Verifier) {
	for _, d := range []name.Digest{res.Index, res.Chart} {
		if err := release.Verify(ctx, d, v); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := signature.LoadECDSASignerVerifier(other, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := release.Verify(ctx, res.Index, otherSigner); err == nil {
		t.Error("the index verifies with a key that did not sign it")
	}

	unsigned := push(t, res.Index.Context().Tag("unsigned"))
	if err := release.Verify(ctx, unsigned, v); err == nil {
		t.Error("an image pushed unsigned verifies")
	}
	byOther := push(t, res.Index.Context().Tag("other-key"))
	if err := (&release.KeySigner{Signer: otherSigner}).Sign(ctx, byOther); err != nil {
		t.Fatal(err)
	}
	if err := release.Verify(ctx, byOther, otherSigner); err != nil {
		t.Errorf("the other key's own signature does not verify: %v", err)
	}
	if err := release.Verify(ctx, byOther, v); err == nil {
		t.Error("an image signed with another key verifies with the release's key")
	}
	// A valid signature of the index, copied to another image, names the
	// index's digest, not that image's.
	copied := push(t, res.Index.Context().Tag("copied"))
	sig, err := remote.Image(sigTag(res.Index))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sigTag(copied), sig); err != nil {
		t.Fatal(err)
	}
	if err := release.Verify(ctx, copied, v); err == nil {
		t.Error("the index's signature, copied beside another image, verifies that image")
	}
}

// sigTag is where cosign looks for the signatures of d.
func sigTag(d name.Digest) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
}

// push pushes a random image to tag, beside the release's index, and
// returns it by digest.
func push(t *testing.T, tag name.Tag) name.Digest {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Context().Digest(d.String())
}
