package release

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/token-projector/token-projector/internal/image"
	"github.com/token-projector/token-projector/internal/release"
)

// checkReproducible builds the binaries and the index a second time, apart
// from the release, and gets the digest the release pushed.
func checkReproducible(ctx context.Context, t *testing.T, root string, res *release.Result) {
	dir := t.TempDir()
	bins := map[string]string{}
	for _, p := range release.Platforms {
		bins[p.String()] = filepath.Join(dir, p.Architecture, "webhook")
		if err := release.BuildWebhook(ctx, root, version, res.Source, p, bins[p.String()]); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := release.Index(image.LocalBase, bins, release.Annotations("https://example.com/token-projector", version, res.Source))
	if err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != res.Index.DigestStr() {
		t.Errorf("a second build gives the index %s, the release pushed %s", d, res.Index.DigestStr())
	}
}
