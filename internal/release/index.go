package release

import (
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/token-projector/token-projector/internal/image"
)

// Annotations are the OCI annotations of the index and of each image.
func Annotations(sourceURL, version string, src Source) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":   sourceURL,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": src.Commit,
		"org.opencontainers.image.created":  src.Time.UTC().Format(time.RFC3339),
	}
}

// Index builds the webhook's image for each platform of binaries (a path
// per platform, in the order of Platforms) on base (a reference pinned by
// digest, or image.LocalBase), all with annotations, into one OCI image
// index. The same binaries, base and annotations give the same digest.
func Index(base string, binaries map[string]string, annotations map[string]string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range Platforms {
		path, ok := binaries[p.String()]
		if !ok {
			return nil, fmt.Errorf("no binary for %s", p)
		}
		img, err := platformImage(base, p, path, annotations)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return mutate.Annotations(idx, annotations).(v1.ImageIndex), nil
}

func platformImage(base string, p v1.Platform, binaryPath string, annotations map[string]string) (v1.Image, error) {
	b, err := image.BaseFor(base, p)
	if err != nil {
		return nil, err
	}
	binary, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, err
	}
	img, err := image.BuildFor(b, image.Webhook, binary, p)
	if err != nil {
		return nil, err
	}
	if img, err = image.OCI(img); err != nil {
		return nil, err
	}
	return mutate.Annotations(img, annotations).(v1.Image), nil
}
