package release

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/token-projector/token-projector/internal/release"
)

// checkBinaries: each platform's image holds, at /webhook, a static ELF
// binary of its architecture (what was built), run as 65532; the amd64
// binary prints the release version and the commit.
func checkBinaries(t *testing.T, res *release.Result) {
	machines := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	for p, want := range machines {
		img := pull(t, res.Images[p])
		bin := webhookOf(t, img)
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: /webhook is not an ELF binary: %v", p, err)
		}
		if f.Machine != want {
			t.Errorf("%s: /webhook is for %s, want %s", p, f.Machine, want)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s: /webhook asks for a dynamic loader: not static", p)
			}
		}
		built, err := os.ReadFile(res.Binaries[p])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bin, built) {
			t.Errorf("%s: the image's /webhook is not the binary built", p)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" || cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: config user %q on %s/%s, want 65532:65532 on %s", p, cf.Config.User, cf.OS, cf.Architecture, p)
		}
	}
	out, err := exec.Command(res.Binaries["linux/amd64"], "--version").Output()
	if err != nil {
		t.Fatalf("webhook --version: %v", err)
	}
	if got := string(out); !strings.HasPrefix(got, "token-projector "+version+" commit "+res.Source.Commit+" (") ||
		!strings.Contains(got, res.Source.Time.Format("2006-01-02T15:04:05Z")) {
		t.Errorf("webhook --version printed %q, want version %s, commit %s and its time %s", got, version, res.Source.Commit, res.Source.Time)
	}
}

// webhookOf reads /webhook from the image's layers.
func webhookOf(t *testing.T, img v1.Image) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == "webhook" {
				b, err := io.ReadAll(tr)
				_ = rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
		_ = rc.Close()
	}
	t.Fatal("no /webhook in the image")
	return nil
}
