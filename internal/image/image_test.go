package image

import (
	"archive/tar"
	"io"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func build(t *testing.T, binary string) v1.Image {
	t.Helper()
	base, err := StaticNonRoot()
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(base, Webhook, []byte(binary))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// files reads every entry of the image's flattened layers.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
			out[h.Name] = h
			if h.Name == "etc/passwd" {
				b, _ := io.ReadAll(tr)
				h.PAXRecords = map[string]string{"content": string(b)}
			}
		}
		_ = rc.Close()
		if !slices.IsSorted(names) {
			t.Errorf("layer entries are not sorted: %v", names)
		}
	}
	return out
}

func TestBuildIsReproducible(t *testing.T) {
	a, b := build(t, "binary"), build(t, "binary")
	if digest(t, a) != digest(t, b) {
		t.Errorf("two builds of the same binary differ: %s and %s", digest(t, a), digest(t, b))
	}
	if c := build(t, "another binary"); digest(t, c) == digest(t, a) {
		t.Error("a different binary gives the same digest")
	}
}

func TestLayerIgnoresOrderAndTime(t *testing.T) {
	x := []File{{Name: "b/c", Mode: 0o644, Data: []byte("c")}, {Name: "a", Mode: 0o600, Data: []byte("a")}}
	y := []File{x[1], x[0]}
	lx, err := Layer(x)
	if err != nil {
		t.Fatal(err)
	}
	ly, err := Layer(y)
	if err != nil {
		t.Fatal(err)
	}
	dx, _ := lx.Digest()
	dy, _ := ly.Digest()
	if dx != dy {
		t.Errorf("the same files in another order give another layer: %s, %s", dx, dy)
	}
	if _, err := Layer([]File{{Name: "a"}, {Name: "/a"}}); err == nil {
		t.Error("a file given twice was accepted")
	}
	if _, err := Layer([]File{{Name: "../etc/passwd"}}); err == nil {
		t.Error("a name leaving the image root was accepted")
	}
}

// TestWebhookImage: the webhook lands root-owned and executable on a base
// with the nonroot user, and runs as that user with the Dockerfile's
// entrypoint; nothing carries the build's time.
func TestWebhookImage(t *testing.T) {
	img := build(t, "binary")
	fs := files(t, img)
	bin := fs["webhook"]
	if bin == nil || bin.Mode != 0o755 || bin.Uid != 0 || bin.Size != int64(len("binary")) {
		t.Fatalf("/webhook: %+v, want a root-owned 0755 file", bin)
	}
	if tmp := fs["tmp/"]; tmp == nil || tmp.Mode != 0o1777 {
		t.Errorf("/tmp: %+v, want mode 1777", tmp)
	}
	if home := fs["home/nonroot/"]; home == nil || home.Uid != NonRootUID {
		t.Errorf("/home/nonroot: %+v, want owned by %d", home, NonRootUID)
	}
	if p := fs["etc/passwd"]; p == nil || !strings.Contains(p.PAXRecords["content"], "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the nonroot user")
	}
	for n, h := range fs {
		if !h.ModTime.Equal(Epoch) {
			t.Errorf("%s has time %v, want %v", n, h.ModTime, Epoch)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/webhook"}) || c.WorkingDir != "/" || len(c.Cmd) != 0 {
		t.Errorf("config %+v, want user 65532:65532, entrypoint [/webhook], workdir /, no cmd", c)
	}
	if !cf.Created.Equal(Epoch) || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("created %v on %s/%s, want %v on linux/amd64", cf.Created, cf.OS, cf.Architecture, Epoch)
	}
}

// TestArchiveAndPush: the archive reads back as the same image, and a
// push to a registry (served on loopback) stores that digest.
func TestArchiveAndPush(t *testing.T) {
	img := build(t, "binary")
	path := filepath.Join(t.TempDir(), "img.tar")
	if err := WriteArchive(img, "example.com/token-projector:test", path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, back) != digest(t, img) {
		t.Errorf("archive digest %s, built %s", digest(t, back), digest(t, img))
	}
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := Push(back, host+"/token-projector:v1")
	if err != nil {
		t.Fatal(err)
	}
	if want := host + "/token-projector@" + digest(t, img).String(); ref != want {
		t.Errorf("pushed %s, want %s", ref, want)
	}
	tag, err := name.ParseReference(host + "/token-projector:v1")
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, pulled) != digest(t, img) {
		t.Errorf("the registry holds %s, built %s", digest(t, pulled), digest(t, img))
	}
	if _, err := Push(back, "not a reference"); err == nil {
		t.Error("a bad reference was accepted")
	}
}

// TestOCI: the OCI form of an image has OCI media types throughout and the
// same layers, configuration and history.
func TestOCI(t *testing.T) {
	img := build(t, "binary")
	oci, err := OCI(img)
	if err != nil {
		t.Fatal(err)
	}
	m, err := oci.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("manifest %s, config %s: want OCI media types", m.MediaType, m.Config.MediaType)
	}
	orig, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(orig.Layers) {
		t.Fatalf("%d layers, want %d", len(m.Layers), len(orig.Layers))
	}
	for i, l := range m.Layers {
		if l.MediaType != types.OCILayer || l.Digest != orig.Layers[i].Digest {
			t.Errorf("layer %d: %s %s, want %s %s", i, l.MediaType, l.Digest, types.OCILayer, orig.Layers[i].Digest)
		}
	}
	a, _ := img.RawConfigFile()
	b, _ := oci.RawConfigFile()
	if string(a) != string(b) {
		t.Errorf("the configuration changed:\n%s\n%s", a, b)
	}
}
