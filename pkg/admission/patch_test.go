package admission

import (
	"encoding/json"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/bench/fixture"
)

// TestEncodePatchIsMarshal checks that encodePatch writes the bytes
// json.Marshal (Response.Complete's encoding) writes for the operations of
// every golden pod and the benchmarks' pod, and leaves value-less
// operations to it.
func TestEncodePatchIsMarshal(t *testing.T) {
	pods := []*corev1.Pod{fixture.Pod(1, "checkout")}
	for _, raw := range GoldenPods(t) {
		var pod corev1.Pod
		if err := json.Unmarshal([]byte(raw), &pod); err != nil {
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
	if checked < 10 {
		t.Fatalf("only %d pods patched", checked)
	}
	if _, ok := encodePatch([]jsonpatch.JsonPatchOperation{{Operation: "remove", Path: "/x"}}); ok {
		t.Error("an operation without a value was encoded here")
	}
	if _, ok := encodePatch(nil); ok {
		t.Error("no operations gave a patch")
	}
}

// TestPlainJSONStringIsMarshal: a string plainJSONString passes is what
// json.Marshal writes, in quotes, for every byte and for the runes
// encoding/json treats specially.
func TestPlainJSONStringIsMarshal(t *testing.T) {
	cases := []string{"", "/spec/containers/0/volumeMounts/-", "token-projector.io~1status", "a b", "\u2028", "\u2029", "é", "\xff", "<>&"}
	for c := 0; c < 256; c++ {
		cases = append(cases, string([]byte{'x', byte(c), 'y'}))
	}
	plain := 0
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if plainJSONString(s) {
			plain++
			if got := `"` + s + `"`; got != string(want) {
				t.Errorf("%q: written as %s, json.Marshal writes %s", s, got, want)
			}
		}
	}
	if plain < 90 {
		t.Fatalf("only %d of %d strings were plain", plain, len(cases))
	}
}
