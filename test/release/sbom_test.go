package release

import (
	"bytes"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/token-projector/token-projector/internal/release"
)

// checkSBOMs: each platform's image has one CycloneDX SBOM among its
// referrers, listing exactly the modules `go version -m` reports for the
// binary (replacements as the module linked).
func checkSBOMs(t *testing.T, res *release.Result) {
	for p, img := range res.Images {
		idx, err := remote.Referrers(img)
		if err != nil {
			t.Fatal(err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var sboms []string
		for _, d := range m.Manifests {
			if d.ArtifactType == string(release.SBOMMediaType) {
				sboms = append(sboms, d.Digest.String())
			}
		}
		if len(sboms) != 1 || sboms[0] != res.SBOMs[p].DigestStr() {
			t.Fatalf("%s: SBOM referrers %v, want the one pushed, %s", p, sboms, res.SBOMs[p].DigestStr())
		}
		art := pull(t, res.SBOMs[p])
		layers, err := art.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: SBOM artifact layers %d, %v; want one", p, len(layers), err)
		}
		rc, err := layers[0].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		doc, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		var bom cdx.BOM
		if err := cdx.NewBOMDecoder(bytes.NewReader(doc), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
			t.Fatalf("%s: the SBOM is not CycloneDX JSON: %v", p, err)
		}
		var listed []string
		if bom.Components != nil {
			for _, c := range *bom.Components {
				listed = append(listed, c.Name+"@"+c.Version)
			}
		}
		slices.Sort(listed)
		want := goVersionM(t, res.Binaries[p])
		if !slices.Equal(listed, want) {
			t.Errorf("%s: the SBOM lists %d modules, go version -m %d:\nSBOM: %v\ngo:   %v", p, len(listed), len(want), listed, want)
		}
		if len(want) < 20 {
			t.Errorf("%s: go version -m lists only %v", p, want)
		}
		if c := bom.Metadata.Component; c == nil || c.Name != "github.com/token-projector/token-projector" || c.Version != version {
			t.Errorf("%s: the SBOM describes %+v, want token-projector %s", p, c, version)
		}
	}
}

// goVersionM lists path@version of each module `go version -m` prints as
// linked into binary: dep lines, or the => line that replaces one.
func goVersionM(t *testing.T, binary string) []string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	var mods []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "dep":
			mods = append(mods, f[1]+"@"+f[2])
		case len(f) >= 3 && f[0] == "=>":
			mods[len(mods)-1] = f[1] + "@" + f[2]
		}
	}
	slices.Sort(mods)
	return mods
}
