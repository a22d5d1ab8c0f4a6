// Package release proves make release offline: a release of the working
// tree published into a registry served on loopback (go-containerregistry's
// pkg/registry), then read back as a user would: both platforms, binaries
// of the right architecture, the SBOM, the signatures (and their failure on
// what the key did not sign), and the chart through helm.
//
// One release is made and its parts checked by subtests; building the
// webhook for two architectures costs about 1-2 minutes on 2 cores with an
// empty build cache, seconds with a warm one.
package release

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/token-projector/token-projector/internal/release"
	"github.com/token-projector/token-projector/test/publish"
	"github.com/token-projector/token-projector/test/render"
	"github.com/token-projector/token-projector/test/testenv"
)

const version = "v0.0.1-test.1"

func TestRelease(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helm, err := render.Helm(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	host := publish.Serve(t, publish.NewRegistry())
	p := publish.NewPublisher(t, root, helm, host+"/tp")
	res := p.Release(ctx, t, version)
	verifier := p.Verifier(t)

	t.Run("index", func(t *testing.T) { checkIndex(t, root, res) })
	t.Run("binaries", func(t *testing.T) { checkBinaries(t, res) })
	t.Run("sbom", func(t *testing.T) { checkSBOMs(t, res) })
	t.Run("signatures", func(t *testing.T) { checkSignatures(ctx, t, res, verifier) })
	t.Run("chart", func(t *testing.T) { checkChart(t, helm, p.Chart(t), res) })
	t.Run("reproducible", func(t *testing.T) { checkReproducible(ctx, t, root, res) })
}

// checkIndex: the tag names the signed index, which lists both platforms
// and carries the OCI annotations of the commit.
func checkIndex(t *testing.T, root string, res *release.Result) {
	tag := res.Index.Context().Tag(res.ChartVersion)
	idx, err := remote.Index(tag)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d.String() != res.Index.DigestStr() {
		t.Errorf("%s names %s, the release pushed %s", tag, d, res.Index.DigestStr())
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range m.Manifests {
		platforms = append(platforms, d.Platform.String())
	}
	if strings.Join(platforms, " ") != "linux/amd64 linux/arm64" {
		t.Errorf("platforms %v, want linux/amd64 and linux/arm64", platforms)
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"org.opencontainers.image.source":   "https://example.com/token-projector",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": strings.TrimSpace(string(head)),
		"org.opencontainers.image.created":  res.Source.Time.Format(time.RFC3339),
	}
	for k, v := range want {
		if m.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	if res.Source.Time.IsZero() || time.Since(res.Source.Time) < 0 {
		t.Errorf("created %v is not a commit time", res.Source.Time)
	}
}

func TestChartVersion(t *testing.T) {
	for in, want := range map[string]string{"v0.1.0": "0.1.0", "v1.2.3-rc.1": "1.2.3-rc.1"} {
		if got, err := release.ChartVersion(in); err != nil || got != want {
			t.Errorf("ChartVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"0.1.0", "v1.2", "v1.2.3+build", "v01.2.3", "latest"} {
		if _, err := release.ChartVersion(bad); err == nil {
			t.Errorf("ChartVersion(%q) accepted", bad)
		}
	}
}

func pull(t *testing.T, d name.Digest) v1.Image {
	t.Helper()
	img, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
