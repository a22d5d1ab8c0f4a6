package admission

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/bench/fixture"
)

// TestPodFieldsAreWhatMutateReads decodes every golden pod of pkg/mutate,
// and the benchmarks' pod, both whole and as podFields, and checks that
// mutate.Mutate and the patch come out the same: if pkg/mutate starts
// reading a field podFields leaves out, a golden case that uses it fails
// here.
func TestPodFieldsAreWhatMutateReads(t *testing.T) {
	ins, _ := filepath.Glob("../mutate/testdata/*/in.yaml")
	if len(ins) == 0 {
		t.Fatal("no golden pods found")
	}
	raws := map[string][]byte{}
	for _, in := range ins {
		b, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		if raws[filepath.Base(filepath.Dir(in))], err = yaml.YAMLToJSON(b); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if raws["benchmark pod"], err = json.Marshal(fixture.Pod(1, "checkout")); err != nil {
		t.Fatal(err)
	}
	for name, raw := range raws {
		t.Run(name, func(t *testing.T) {
			var whole corev1.Pod
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &whole); err != nil {
				t.Fatal(err)
			}
			var fields podFields
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &fields); err != nil {
				t.Fatal(err)
			}
			read := fields.pod()
			want, wantErr := mutate.Mutate(&whole, mutate.DefaultConfig())
			got, gotErr := mutate.Mutate(read, mutate.DefaultConfig())
			if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
				t.Fatalf("Mutate of the whole pod: %v; of its read fields: %v", wantErr, gotErr)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Mutate differs (-whole +read fields):\n%s", diff)
			}
			if diff := cmp.Diff(want.Changes.JSONPatch(&whole), got.Changes.JSONPatch(read)); diff != "" {
				t.Errorf("patch differs (-whole +read fields):\n%s", diff)
			}
			if diff := cmp.Diff(whole.ObjectMeta, read.ObjectMeta); diff != "" {
				t.Errorf("metadata differs (-whole +read fields):\n%s", diff)
			}
		})
	}
}

func TestReviewOfAPodTakesTheShortcut(t *testing.T) {
	body, err := fixture.Body(fixture.UID("t", 1), "demo", fixture.Pod(1, "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	var review podReview
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
		t.Fatal(err)
	}
	if !review.taken() || review.Request.UID != fixture.UID("t", 1) || review.Request.Object.Metadata.Annotations[mutate.AnnotationServiceAccount] != "checkout" {
		t.Errorf("review of the benchmarks' pod: taken %v, %+v", review.taken(), review.Request)
	}
}

// TestEncodePatchIsMarshal checks that encodePatch writes the bytes
// json.Marshal writes for the operations of every golden pod and the
// benchmarks' pod, and leaves value-less operations to it.
func TestEncodePatchIsMarshal(t *testing.T) {
	ins, _ := filepath.Glob("../mutate/testdata/*/in.yaml")
	pods := []*corev1.Pod{fixture.Pod(1, "checkout")}
	for _, in := range ins {
		b, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		var pod corev1.Pod
		if err := yaml.Unmarshal(b, &pod); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, &pod)
	}
	checked := 0
	for _, pod := range pods {
		res, err := mutate.Mutate(pod, mutate.DefaultConfig())
		if err != nil || res.Changes.Empty() {
			continue
		}
		ops := res.Changes.JSONPatch(pod)
		want, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := encodePatch(ops)
		if !ok || string(got) != string(want) {
			t.Errorf("pod %s: encodePatch = %s, %v\njson.Marshal = %s", pod.Name, got, ok, want)
		}
		checked++
	}
	if checked < 2 {
		t.Fatalf("only %d pods patched", checked)
	}
	if _, ok := encodePatch([]jsonpatch.JsonPatchOperation{{Operation: "remove", Path: "/x"}}); ok {
		t.Error("an operation without a value was encoded here")
	}
	if _, ok := encodePatch(nil); ok {
		t.Error("no operations gave a patch")
	}
}
