package release

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Blob is content of a media type: an artifact's configuration or layer.
type Blob struct {
	MediaType   types.MediaType
	Data        []byte
	Annotations map[string]string
}

// EmptyConfig is the configuration of an OCI artifact that has none.
var EmptyConfig = Blob{MediaType: "application/vnd.oci.empty.v1+json", Data: []byte("{}")}

// Artifact is an OCI manifest of arbitrary content (OCI image-spec 1.1
// artifacts): a Helm chart, an SBOM.
type Artifact struct {
	ArtifactType types.MediaType
	Config       Blob
	Layers       []Blob
	Annotations  map[string]string
	// Subject is the manifest the artifact is about (referrers API).
	Subject *v1.Descriptor
}

// Manifest returns the artifact's manifest and its digest, known before
// anything is pushed.
func (a Artifact) Manifest() ([]byte, v1.Hash, error) {
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  string(a.ArtifactType),
		Config:        descriptor(a.Config),
		Annotations:   a.Annotations,
		Subject:       a.Subject,
	}
	for _, l := range a.Layers {
		m.Layers = append(m.Layers, descriptor(l))
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	return raw, h, err
}

func descriptor(b Blob) v1.Descriptor {
	h, n, _ := v1.SHA256(bytes.NewReader(b.Data))
	return v1.Descriptor{MediaType: b.MediaType, Size: n, Digest: h, Annotations: b.Annotations}
}

// Push uploads the artifact's blobs, then its manifest under ref (a tag,
// or the artifact's own digest), and returns the manifest by digest.
func (a Artifact) Push(ctx context.Context, ref name.Reference, opts ...remote.Option) (name.Digest, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	raw, h, err := a.Manifest()
	if err != nil {
		return name.Digest{}, err
	}
	for _, b := range append([]Blob{a.Config}, a.Layers...) {
		if err := remote.WriteLayer(ref.Context(), static.NewLayer(b.Data, b.MediaType), opts...); err != nil {
			return name.Digest{}, fmt.Errorf("pushing a blob of %s: %w", ref, err)
		}
	}
	if err := remote.Put(ref, rawManifest(raw), opts...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return ref.Context().Digest(h.String()), nil
}

// rawManifest is an OCI manifest as remote.Put takes it.
type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
