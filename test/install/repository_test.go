package install

import (
	"bytes"
	"debug/elf"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoBuildOutputsInGit: a bare `go build` of any command, in the
// repository root or in the command's own folder, writes a file .gitignore
// keeps out, and no tracked file is an executable binary.
func TestNoBuildOutputsInGit(t *testing.T) {
	list := exec.Command("go", "list", "-f", "{{if eq .Name \"main\"}}{{.Dir}}{{end}}", "./...")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var outputs []string
	for dir := range strings.FieldsSeq(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		rel = filepath.ToSlash(rel)
		outputs = append(outputs, path.Base(rel), path.Join(rel, path.Base(rel)))
	}
	if len(outputs) < 2*3 {
		t.Fatalf("found only %v: expected the webhook, devenv and bench commands at least", outputs)
	}
	for _, o := range outputs {
		// --no-index: the file need not exist, and a tracked one still counts.
		check := exec.Command("git", "check-ignore", "--no-index", "-q", o)
		check.Dir = root
		if err := check.Run(); err != nil {
			t.Errorf("%s (what go build writes) is not ignored by .gitignore", o)
		}
	}

	files := exec.Command("git", "ls-files", "-z")
	files.Dir = root
	tracked, err := files.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for name := range bytes.SplitSeq(bytes.TrimRight(tracked, "\x00"), []byte{0}) {
		if f, err := elf.Open(filepath.Join(root, string(name))); err == nil {
			_ = f.Close()
			t.Errorf("%s is an executable binary committed to git", name)
		}
	}
}
