package install

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/token-projector/token-projector/test/testenv"
)

// No Docker engine runs here, so the image is checked in parts: the binary
// the Dockerfile builds, and what its build context lets in.

// TestWebhookBinaryIsStatic builds the webhook as the Dockerfile does and
// checks it needs no dynamic loader or shared library: the distroless
// static image has none.
func TestWebhookBinaryIsStatic(t *testing.T) {
	bin, err := testenv.WebhookBinary(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v segment: it is not static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
}

// TestDockerBuildContext: every package of the webhook is copied into the
// builder stage and let in by the .dockerignore allow-list.
func TestDockerBuildContext(t *testing.T) {
	dockerfile := readLines(t, filepath.Join(root, "Dockerfile"))
	ignore := readLines(t, filepath.Join(root, ".dockerignore"))
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./cmd/webhook")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/token-projector/token-projector/"
	dirs := map[string]bool{}
	for pkg := range strings.FieldsSeq(string(out)) {
		if rel, ok := strings.CutPrefix(pkg, module); ok {
			dirs[strings.SplitN(rel, "/", 2)[0]] = true
		}
	}
	if len(dirs) == 0 {
		t.Fatal("found none of the webhook's own packages")
	}
	for dir := range dirs {
		if !slices.Contains(dockerfile, "COPY "+dir+"/ "+dir+"/") {
			t.Errorf("Dockerfile does not COPY %s/, which cmd/webhook imports", dir)
		}
		if !slices.Contains(ignore, "!"+dir+"/") {
			t.Errorf(".dockerignore does not let in %s/, which cmd/webhook imports", dir)
		}
	}
	if len(ignore) == 0 || ignore[0] != "*" {
		t.Errorf(".dockerignore must start with * (an allow-list), got %q", ignore)
	}
	build := strings.Join(dockerfile, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/webhook"} {
		if !strings.Contains(build, want) {
			t.Errorf("the Dockerfile's build lacks %s", want)
		}
	}
}

// readLines returns the file's trimmed lines, without comments and blank
// lines.
func readLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
