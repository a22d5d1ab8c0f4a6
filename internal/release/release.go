package release

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Config is what make release passes.
type Config struct {
	// Root is the repository's working tree.
	Root string
	// Version is the release's tag, v0.1.0.
	Version string
	// Registry is host/path: the image goes to Registry/token-projector,
	// the chart to Registry/charts/token-projector.
	Registry string
	// Base is the image's base: a reference pinned by digest (the
	// Dockerfile's), or image.LocalBase.
	Base string
	// SourceURL is the repository's address (org.opencontainers.image.source).
	SourceURL string
	// Helm is the helm binary that packages the chart.
	Helm string
	// Signer signs the image index and the chart.
	Signer Signer
	// Out receives the binaries, SBOMs and the chart package.
	Out string
	// Log receives one line per step.
	Log io.Writer
	// Remote are extra registry options; credentials come from
	// authn.DefaultKeychain (docker config, credential helpers).
	Remote []remote.Option
}

// Result is what a release published.
type Result struct {
	Index    name.Digest
	Source   Source
	Binaries map[string]string      // platform → binary path
	Images   map[string]name.Digest // platform → image manifest
	SBOMs    map[string]name.Digest // platform → SBOM artifact
	Chart    name.Digest
	// ChartVersion is the chart's version and appVersion, and the index's tag.
	ChartVersion string
}

// Run publishes a release. Order matters: the index, its SBOMs and its
// signature, then the chart's signature, and the chart last, so that a
// release cut short leaves no chart naming an image that is missing or
// unsigned.
func Run(ctx context.Context, c Config) (*Result, error) {
	chartVersion, err := ChartVersion(c.Version)
	if err != nil {
		return nil, err
	}
	if c.Signer == nil {
		return nil, fmt.Errorf("no signer: a release is signed")
	}
	opts := append([]remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)}, c.Remote...)
	repo, err := name.NewRepository(c.Registry + "/token-projector")
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", c.Registry, err)
	}
	src, err := GitSource(c.Root)
	if err != nil {
		return nil, err
	}
	res := &Result{Source: src, ChartVersion: chartVersion, Binaries: map[string]string{},
		Images: map[string]name.Digest{}, SBOMs: map[string]name.Digest{}}
	logf := func(format string, a ...any) {
		if c.Log != nil {
			_, _ = fmt.Fprintf(c.Log, format+"\n", a...)
		}
	}

	for _, p := range Platforms {
		bin := filepath.Join(c.Out, p.OS+"-"+p.Architecture, "webhook")
		if err := BuildWebhook(ctx, c.Root, c.Version, src, p, bin); err != nil {
			return nil, err
		}
		res.Binaries[p.String()] = bin
		logf("built %s", bin)
	}
	idx, err := Index(c.Base, res.Binaries, Annotations(c.SourceURL, c.Version, src))
	if err != nil {
		return nil, err
	}
	h, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	res.Index = repo.Digest(h.String())
	// By digest: the tag comes once the index is signed.
	if err := remote.WriteIndex(res.Index, idx, opts...); err != nil {
		return nil, fmt.Errorf("pushing the image index: %w", err)
	}
	logf("pushed %s", res.Index)

	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, desc := range m.Manifests {
		p := desc.Platform.String()
		res.Images[p] = repo.Digest(desc.Digest.String())
		doc, err := SBOM(res.Binaries[p], c.Version, src)
		if err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(c.Out, desc.Platform.OS+"-"+desc.Platform.Architecture, "sbom.cdx.json"), doc); err != nil {
			return nil, err
		}
		d, err := AttachSBOM(ctx, repo, v1.Descriptor{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest}, doc, opts...)
		if err != nil {
			return nil, err
		}
		res.SBOMs[p] = d
		logf("attached the SBOM %s to %s", d, p)
	}
	if err := c.Signer.Sign(ctx, res.Index); err != nil {
		return nil, err
	}
	tag := repo.Tag(chartVersion)
	if err := remote.Tag(tag, idx, opts...); err != nil {
		return nil, fmt.Errorf("tagging the image index: %w", err)
	}
	logf("signed %s and tagged it %s", res.Index, tag)

	chartRepo, err := ChartRepository(c.Registry, "token-projector")
	if err != nil {
		return nil, err
	}
	pkg, err := PackageChart(ctx, c.Helm, filepath.Join(c.Root, "charts", "token-projector"), chartVersion, repo.Name(), h.String(), c.Out)
	if err != nil {
		return nil, err
	}
	art, err := ChartArtifact(pkg, src.Time)
	if err != nil {
		return nil, err
	}
	// By digest first, so that cosign can sign it; helm finds it only once
	// tagged with its version.
	_, ch, err := art.Manifest()
	if err != nil {
		return nil, err
	}
	if res.Chart, err = art.Push(ctx, chartRepo.Digest(ch.String()), opts...); err != nil {
		return nil, err
	}
	if err := c.Signer.Sign(ctx, res.Chart); err != nil {
		return nil, err
	}
	logf("signed %s", res.Chart)
	if _, err := art.Push(ctx, chartRepo.Tag(chartVersion), opts...); err != nil {
		return nil, err
	}
	logf("pushed the chart %s (oci://%s --version %s)", res.Chart, chartRepo.Name(), chartVersion)
	return res, nil
}
