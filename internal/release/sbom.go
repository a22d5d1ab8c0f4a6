package release

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"runtime/debug"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// SBOMMediaType is the media type of the SBOM and the artifact type of
// the manifest that attaches it to an image (`oras discover`,
// `regctl artifact list` and the OCI referrers API show it).
const SBOMMediaType types.MediaType = "application/vnd.cyclonedx+json"

// SBOM writes a CycloneDX document (JSON) of the Go modules linked into the
// binary at path, read from its build information: the main module as the
// described component, every dependency (as replaced, if it is) as a
// library with its package URL and go.sum hash. Its timestamp is the
// commit's, so the same binary gives the same document.
func SBOM(path, version string, src Source) ([]byte, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the build information of %s: %w", path, err)
	}
	bom := cdx.NewBOM()
	bom.Metadata = &cdx.Metadata{
		Timestamp: src.Time.UTC().Format(time.RFC3339),
		Component: &cdx.Component{
			Type:       cdx.ComponentTypeApplication,
			BOMRef:     purl(bi.Main.Path, version),
			Name:       bi.Main.Path,
			Version:    version,
			PackageURL: purl(bi.Main.Path, version),
		},
		Properties: &[]cdx.Property{
			{Name: "go.version", Value: bi.GoVersion},
			{Name: "vcs.revision", Value: src.Commit},
		},
	}
	comps := make([]cdx.Component, 0, len(bi.Deps))
	for _, d := range bi.Deps {
		m := linked(d)
		c := cdx.Component{
			Type:       cdx.ComponentTypeLibrary,
			BOMRef:     purl(m.Path, m.Version),
			Name:       m.Path,
			Version:    m.Version,
			PackageURL: purl(m.Path, m.Version),
		}
		if m.Sum != "" {
			c.Properties = &[]cdx.Property{{Name: "go.sum", Value: m.Sum}}
		}
		comps = append(comps, c)
	}
	bom.Components = &comps
	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.Encode(bom); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// linked is the module whose code is in the binary: d's replacement, if any.
func linked(d *debug.Module) *debug.Module {
	if d.Replace != nil {
		return d.Replace
	}
	return d
}

// purl is the package URL of a Go module version.
func purl(path, version string) string {
	return "pkg:golang/" + path + "@" + version
}

// AttachSBOM pushes doc as an OCI artifact whose subject is the manifest
// subject (in repo): registries with the referrers API list it there, the
// others under the referrers tag (sha256-<hex>) that go-containerregistry
// keeps for them, which `oras discover` and `cosign tree` read as well.
func AttachSBOM(ctx context.Context, repo name.Repository, subject v1.Descriptor, doc []byte, opts ...remote.Option) (name.Digest, error) {
	subject = v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest}
	a := Artifact{
		ArtifactType: SBOMMediaType,
		Config:       EmptyConfig,
		Layers: []Blob{{MediaType: SBOMMediaType, Data: doc,
			Annotations: map[string]string{"org.opencontainers.image.title": "sbom.cdx.json"}}},
		Subject: &subject,
	}
	_, h, err := a.Manifest()
	if err != nil {
		return name.Digest{}, err
	}
	d, err := a.Push(ctx, repo.Digest(h.String()), opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("the SBOM of %s: %w", subject.Digest, err)
	}
	return d, nil
}
