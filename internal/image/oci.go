package image

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI returns img with OCI media types (manifest, config and layers), so
// that it can carry annotations in an OCI image index (make release). The
// layers' bytes, the configuration and the history are unchanged: a gzip
// layer is the same blob under either media type.
func OCI(img v1.Image) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	out := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: ociLayer{l}}
	}
	if out, err = mutate.Append(out, adds...); err != nil {
		return nil, err
	}
	// The configuration, with its history and diff IDs, as it was.
	return mutate.ConfigFile(out, cf.DeepCopy())
}

// ociLayer is a layer seen under the OCI media type of its kind.
type ociLayer struct{ v1.Layer }

func (l ociLayer) MediaType() (types.MediaType, error) {
	mt, err := l.Layer.MediaType()
	if err != nil {
		return "", err
	}
	switch mt {
	case types.DockerLayer:
		return types.OCILayer, nil
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer, nil
	}
	return mt, nil
}
