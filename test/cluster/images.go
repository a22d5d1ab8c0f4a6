package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/token-projector/token-projector/internal/image"
)

// Image is an image the cluster's pods run, written as an archive that
// Start imports.
type Image struct {
	Ref     string
	Archive string
}

// BuildImage builds the static Go program pkg (a package path relative to
// the module root) as the Dockerfile builds the webhook and writes it as an
// image ref, on the static non-root base, to dir.
func BuildImage(root, dir, pkg, ref string) (Image, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./"+pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Image{}, fmt.Errorf("building %s: %w\n%s", pkg, err, out)
	}
	path := "/" + filepath.Base(pkg)
	return ImageOf(dir, bin, ref, image.Spec{Binary: path, Entrypoint: []string{path}, WorkingDir: "/"})
}

// ImageOf writes the binary as an image ref with spec, on the static
// non-root base, to dir.
func ImageOf(dir, binary, ref string, spec image.Spec) (Image, error) {
	img, err := image.BuildFile(image.LocalBase, spec, binary)
	if err != nil {
		return Image{}, err
	}
	out := Image{Ref: ref, Archive: filepath.Join(dir, filepath.Base(binary)+".tar")}
	return out, image.WriteArchive(img, ref, out.Archive)
}
