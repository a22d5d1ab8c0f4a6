package image

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Spec is what an image adds to its base: one static binary and the
// runtime configuration. test/install checks that the Dockerfile's final
// stage says the same of Webhook.
type Spec struct {
	// Binary is where the binary lands in the image (root-owned, 0755, as
	// a COPY without --chown leaves it).
	Binary     string
	User       string
	WorkingDir string
	Entrypoint []string
	// Cmd are the default arguments; the chart passes its own.
	Cmd []string
}

// Webhook is the webhook's image, as the Dockerfile describes it.
var Webhook = Spec{
	Binary:     "/webhook",
	User:       fmt.Sprintf("%d:%d", NonRootUID, NonRootUID),
	WorkingDir: "/",
	Entrypoint: []string{"/webhook"},
}

// Build adds the binary at spec.Binary to base as one layer and sets the
// runtime configuration; the base's environment is kept.
func Build(base v1.Image, spec Spec, binary []byte) (v1.Image, error) {
	return BuildFor(base, spec, binary, Platform)
}

// BuildFor is Build for a binary of platform p.
func BuildFor(base v1.Image, spec Spec, binary []byte, p v1.Platform) (v1.Image, error) {
	layer, err := Layer([]File{{Name: spec.Binary, Mode: 0o755, Data: binary}})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "COPY " + filepath.Base(spec.Binary) + " " + spec.Binary},
	})
	if err != nil {
		return nil, err
	}
	return withConfig(img, p, func(c *v1.Config) {
		c.User = spec.User
		c.WorkingDir = spec.WorkingDir
		c.Entrypoint = slices.Clone(spec.Entrypoint)
		c.Cmd = slices.Clone(spec.Cmd)
	})
}

// BuildFile builds spec on the base ref names (see Base) with the binary
// at path.
func BuildFile(baseRef string, spec Spec, binaryPath string) (v1.Image, error) {
	base, err := Base(baseRef)
	if err != nil {
		return nil, err
	}
	binary, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, err
	}
	return Build(base, spec, binary)
}

// WriteArchive writes img, tagged tag, as a docker-archive tarball: what
// `ctr images import`, `docker load` and `podman load` read.
func WriteArchive(img v1.Image, tag, path string) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", tag, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// A write cut short never passes for an image.
	partial := path + ".partial"
	if err := tarball.WriteToFile(partial, t, img); err != nil {
		return err
	}
	return os.Rename(partial, path)
}

// ReadArchive reads the one image of a WriteArchive tarball.
func ReadArchive(path string) (v1.Image, error) {
	return tarball.ImageFromPath(path, nil)
}

// Push writes img to the registry reference dst names, with the
// credentials of ~/.docker/config.json if any, and returns the pushed
// reference by digest.
func Push(img v1.Image, dst string, opts ...remote.Option) (string, error) {
	ref, err := name.ParseReference(dst)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", dst, err)
	}
	opts = append([]remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.Write(ref, img, opts...); err != nil {
		return "", fmt.Errorf("pushing %s: %w", dst, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Digest(d.String()).String(), nil
}
