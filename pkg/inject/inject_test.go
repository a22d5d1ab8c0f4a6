package inject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/token-projector/token-projector/pkg/mutate"
)

var update = flag.Bool("update", false, "rewrite the golden out.yaml and error.txt files")

// TestGolden runs testdata/<case>/in.yaml through Run. A case whose name ends
// in -emit-rbac also emits RBAC, with namespace "default-ns" for objects that
// name none. out.yaml is the expected stream; error.txt the expected refusal.
func TestGolden(t *testing.T) {
	ins, _ := filepath.Glob("testdata/*/in.yaml")
	if len(ins) == 0 {
		t.Fatal("no golden cases")
	}
	for _, in := range ins {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{Config: mutate.DefaultConfig()}
			if strings.HasSuffix(dir, "-emit-rbac") {
				opts.EmitRBAC, opts.Namespace = true, "default-ns"
			}
			var out bytes.Buffer
			err = Run(bytes.NewReader(src), "in.yaml", &out, opts)
			got, file := out.String(), filepath.Join(dir, "out.yaml")
			if err != nil {
				got, file = err.Error()+"\n", filepath.Join(dir, "error.txt")
				if out.Len() > 0 {
					t.Errorf("a refused stream still wrote output:\n%s", out.String())
				}
			}
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("reading %s: %v (got:\n%s)", file, err, got)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", file, diff)
			}
		})
	}
}

// TestIdempotent runs the output of every admitted case through Run again:
// nothing changes, as the webhook changes nothing on its own output.
func TestIdempotent(t *testing.T) {
	outs, _ := filepath.Glob("testdata/*/out.yaml")
	for _, file := range outs {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := Run(bytes.NewReader(src), file, &out, Options{Config: mutate.DefaultConfig()}); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if strings.HasSuffix(filepath.Dir(file), "-emit-rbac") {
			continue // the first pass added RBAC documents; covered by the pod cases
		}
		if diff := cmp.Diff(string(src), out.String()); diff != "" {
			t.Errorf("%s changed on a second pass (-first +second):\n%s", file, diff)
		}
	}
}
