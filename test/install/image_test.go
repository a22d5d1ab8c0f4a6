package install

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/token-projector/token-projector/internal/image"
	"github.com/token-projector/token-projector/test/testenv"
)

// finalStage reads what the Dockerfile's last stage says about the image:
// its base, and the Spec that hack/image builds without Docker.
func finalStage(t *testing.T) (base string, spec image.Spec) {
	t.Helper()
	lines := readLines(t, filepath.Join(root, "Dockerfile"))
	for _, line := range lines {
		instr, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			base, spec = strings.Fields(arg)[0], image.Spec{WorkingDir: "/"}
		case "WORKDIR":
			spec.WorkingDir = arg
		case "USER":
			spec.User = arg
		case "COPY":
			if f := strings.Fields(arg); len(f) == 3 && strings.HasPrefix(f[0], "--from=") {
				spec.Binary = f[2]
			}
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(arg), &v); err != nil {
				t.Fatalf("Dockerfile %s must be in exec (JSON) form: %v", instr, err)
			}
			if strings.ToUpper(instr) == "CMD" {
				spec.Cmd = v
			} else {
				spec.Entrypoint = v
			}
		}
	}
	return base, spec
}

// TestDockerfileDescribesTheImage: the Dockerfile and hack/image (make
// image) build the same image: one binary at the same path, run by the
// same user with the same entrypoint and arguments, on the same
// distroless static nonroot base pinned by digest, whose user the chart
// runs as.
func TestDockerfileDescribesTheImage(t *testing.T) {
	base, spec := finalStage(t)
	if !reflect.DeepEqual(spec, image.Webhook) {
		t.Errorf("the Dockerfile's final stage says %+v, hack/image builds %+v", spec, image.Webhook)
	}
	repo, digest, ok := strings.Cut(base, "@sha256:")
	if repo != "gcr.io/distroless/static:nonroot" || !ok || len(digest) != 64 {
		t.Errorf("the Dockerfile's base is %s, want gcr.io/distroless/static:nonroot pinned by digest", base)
	}
	if user := strings.Split(spec.User, ":")[0]; user != "65532" || image.NonRootUID != 65532 {
		t.Errorf("the image runs as %s, the local base's nonroot user is %d, want 65532 (the chart's runAsUser)", user, image.NonRootUID)
	}
	// make image uses the Dockerfile's base: one place to pin it.
	out, err := exec.Command("make", "--no-print-directory", "-s", "-C", root, "--eval", "print-base-image: ; @echo $(BASE_IMAGE)", "print-base-image").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != base {
		t.Errorf("make image's BASE_IMAGE is %q, want the Dockerfile's base %s", got, base)
	}
}

// TestImageIsReproducible builds the webhook and its image twice, each with
// the command make image runs (on the local base: no registry here), and
// gets byte-identical archives, hence the same digest.
func TestImageIsReproducible(t *testing.T) {
	var digests, archives []string
	for range 2 {
		dir := t.TempDir()
		bin, err := testenv.BuildWebhook(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		archive := filepath.Join(dir, "image.tar")
		cmd := exec.Command("go", "run", "./hack/image", "build", "-binary", bin, "-base", image.LocalBase, "-tag", "example.com/token-projector:test", "-o", archive)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hack/image build: %v\n%s", err, out)
		}
		f := strings.Fields(string(out))
		if len(f) != 3 || !strings.HasPrefix(f[2], "sha256:") {
			t.Fatalf("hack/image build printed %q, want <archive> <tag> <digest>", out)
		}
		digests = append(digests, f[2])
		archives = append(archives, archive)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds gave digests %s and %s", digests[0], digests[1])
	}
	a, err := os.ReadFile(archives[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(archives[1])
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Error("two builds wrote different archives")
	}
}
