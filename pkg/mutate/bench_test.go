package mutate_test

import (
	"encoding/json"
	"testing"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/bench/fixture"
)

// The micro-benchmarks of the pure core run on the benchmarks' pod (4.8 KB of
// JSON, 3 containers and an init container, two audiences, a ServiceAccount
// annotation); make bench-micro runs them with -benchmem, so allocs/op is
// allocations per admission for the step measured.

func BenchmarkParse(b *testing.B) {
	pod := fixture.Pod(1, "checkout")
	cfg := mutate.DefaultConfig()
	for b.Loop() {
		if _, _, err := mutate.Parse(pod.Annotations, &pod.Spec, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMutate(b *testing.B) {
	pod := fixture.Pod(1, "checkout")
	cfg := mutate.DefaultConfig()
	for b.Loop() {
		res, err := mutate.Mutate(pod, cfg)
		if err != nil || res.Changes.Empty() {
			b.Fatalf("Mutate: %+v, %v", res.Changes, err)
		}
	}
}

// BenchmarkJSONPatch builds the add-only operations and marshals them, as
// the answer carries them.
func BenchmarkJSONPatch(b *testing.B) {
	pod := fixture.Pod(1, "checkout")
	res, err := mutate.Mutate(pod, mutate.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ops := res.Changes.JSONPatch(pod)
		if _, err := json.Marshal(ops); err != nil || len(ops) == 0 {
			b.Fatalf("%d operations: %v", len(ops), err)
		}
	}
}
