package image

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// LocalBase names the base that StaticNonRoot assembles, for the -base
// flag of hack/image and BASE_IMAGE of make image.
const LocalBase = "local"

// NonRootUID is the nonroot user of distroless and of StaticNonRoot; the
// Dockerfile's USER and the chart's runAsUser name it too.
const NonRootUID = 65532

// Platform is the platform of every image built here.
var Platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// StaticNonRoot assembles, without a registry, what the release base
// (gcr.io/distroless/static:nonroot) gives a static binary: the users root,
// nobody and nonroot (65532) with their groups and home directories, a
// world-writable /tmp, and the same environment and user. It carries no CA
// bundle: the webhook talks only to kube-apiserver, whose CA its
// ServiceAccount volume brings.
func StaticNonRoot() (v1.Image, error) {
	layer, err := Layer([]File{
		{Name: "etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRootUID, NonRootUID))},
		{Name: "etc/group", Mode: 0o644, Data: []byte(
			"root:x:0:\nnobody:x:65534:\n" + fmt.Sprintf("nonroot:x:%d:\n", NonRootUID))},
		{Name: "etc/nsswitch.conf", Mode: 0o644, Data: []byte("hosts: files dns\n")},
		{Name: "home/nonroot/", Mode: 0o700, UID: NonRootUID, GID: NonRootUID},
		{Name: "root/", Mode: 0o700},
		{Name: "tmp/", Mode: 0o1777},
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	return withConfig(img, Platform, func(c *v1.Config) {
		c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		c.User = fmt.Sprint(NonRootUID)
		c.WorkingDir = "/home/nonroot"
	})
}

// Base returns the base image ref names: LocalBase assembles StaticNonRoot,
// anything else is pulled (for Platform) from its registry, with the
// credentials of ~/.docker/config.json if any. Pin it by digest.
func Base(ref string) (v1.Image, error) {
	return BaseFor(ref, Platform)
}

// BaseFor is Base for platform p (make release builds one image per
// platform on the same base index).
func BaseFor(ref string, p v1.Platform) (v1.Image, error) {
	if ref == LocalBase {
		return StaticNonRoot()
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("base image %q: %w", ref, err)
	}
	img, err := remote.Image(r, remote.WithPlatform(p), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return nil, fmt.Errorf("pulling base image %s: %w", ref, err)
	}
	return img, nil
}

// withConfig sets the platform p and the creation time (Epoch), lets edit
// change the rest of the runtime configuration, and returns the image.
func withConfig(img v1.Image, p v1.Platform, edit func(*v1.Config)) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: Epoch}
	edit(&cf.Config)
	return mutate.ConfigFile(img, cf)
}
