package admission

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/test/bench/fixture"
)

// sameAsFramework fails unless whatever onePass accepts of body (with the
// pod's fields) is exactly what the framework's decode makes of it, and
// the pod's fields are exactly decodePod's of the request's object. It
// reports whether onePass took body.
func sameAsFramework(t testing.TB, body []byte) bool {
	t.Helper()
	if !plainReview(body) {
		return false // never given to onePass
	}
	req, pod, gvk, ok := onePass(body, true)
	if !ok {
		return false
	}
	want, _, err := universalDecode(body)
	if err != nil {
		t.Fatalf("onePass read a review the framework refuses (%v)\nbody %.500q", err, body)
	}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("onePass's request differs from the framework's:\n%s\nbody %.500q", cmp.Diff(want, req), body)
	}
	if _, known := plainKinds[metav1.TypeMeta{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind}]; !known {
		t.Fatalf("onePass reported the kind %v", gvk)
	}
	if req == nil || len(req.Object.Raw) == 0 {
		if pod != nil {
			t.Fatalf("onePass decoded a pod from no object\nbody %.500q", body)
		}
		return true
	}
	var wantPod corev1.Pod
	if err := decodePod(req.Object.Raw, &wantPod); err != nil {
		t.Fatalf("onePass decoded a pod that decodePod refuses (%v)\nbody %.500q", err, body)
	}
	if pod == nil {
		t.Fatalf("onePass did not decode the pod\nbody %.500q", body)
	}
	if diff := cmp.Diff(&wantPod, pod.pod()); diff != "" {
		t.Fatalf("onePass's pod fields differ from decodePod's (-decodePod +onePass):\n%s\nbody %.500q", diff, body)
	}
	return true
}

// seedBodies are the seed corpus of FuzzAdmissionReview (every golden pod
// as a review, and hostile reviews) and the benchmarks' review.
func seedBodies(t testing.TB) map[string][]byte {
	t.Helper()
	bodies := CorpusInputs(t, "testdata/fuzz/FuzzAdmissionReview")
	body, err := fixture.Body(fixture.UID("bench", 1), "bench", fixture.Pod(1, "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	bodies["benchmark pod"] = body
	return bodies
}

// TestOnePassIsTheFrameworkDecode holds onePass to the framework's decode
// on every seed, and checks that it takes the reviews kube-apiserver sends.
func TestOnePassIsTheFrameworkDecode(t *testing.T) {
	taken := 0
	for name, body := range seedBodies(t) {
		if sameAsFramework(t, body) {
			taken++
		} else if name == "benchmark pod" {
			t.Errorf("onePass refused the review kube-apiserver sends")
		}
	}
	t.Logf("onePass took %d of the seeds", taken)
	if taken < 30 {
		t.Fatalf("onePass took only %d seeds: the comparison covers too little", taken)
	}
}

// FuzzReviewDecode: on any input onePass accepts, its request and the pod's
// fields are the framework's. Seeds: FuzzAdmissionReview's.
func FuzzReviewDecode(f *testing.F) {
	for _, body := range seedBodies(f) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) { sameAsFramework(t, body) })
}

// TestRequestPodTakesOnlyItsOwnBytes: the fields Lean decoded stand for
// the very bytes they came from; any other object, a copy of those bytes
// included, is decoded from the request.
func TestRequestPodTakesOnlyItsOwnBytes(t *testing.T) {
	raw := []byte(`{"metadata":{"name":"from-bytes"}}`)
	ctx := withDecodedPod(context.Background(), raw, &podFields{Metadata: metaIn{Name: "from-the-pass"}})
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"the same bytes", raw, "from-the-pass"},
		{"a copy", bytes.Clone(raw), "from-bytes"},
		{"a prefix", raw[:len(raw)-1], ""},
		{"none", nil, ""},
	} {
		var pod corev1.Pod
		err := requestPod(ctx, tc.raw, &pod)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: decoded %q, want the decode error", tc.name, pod.Name)
			}
			continue
		}
		if err != nil || pod.Name != tc.want {
			t.Errorf("%s: got %q (%v), want %q", tc.name, pod.Name, err, tc.want)
		}
	}
}

// BenchmarkDecodeReview is the review and its pod decoded as Lean does,
// against the framework's decode followed by decodePod.
func BenchmarkDecodeReview(b *testing.B) {
	body, err := fixture.Body(fixture.UID("bench", 1), "bench", fixture.Pod(1, "checkout"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("onePass", func(b *testing.B) {
		for b.Loop() {
			if _, pod, _, err := decodeReview(body, true); err != nil || pod == nil {
				b.Fatal("not decoded in one pass", err)
			}
		}
	})
	b.Run("framework+decodePod", func(b *testing.B) {
		for b.Loop() {
			req, _, err := universalDecode(body)
			if err != nil {
				b.Fatal(err)
			}
			var pod corev1.Pod
			if err := decodePod(req.Object.Raw, &pod); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestEnvOnlyWhenAsked: a container's env is decoded only for a pod that
// asks for token-file-env, wherever the annotation stands in the object
// (after the spec here), and is then exactly the env sent; a pod that does
// not ask keeps none, and an env that would not decode does not refuse it.
// An env that does not decode refuses a pod that asks, on the framework's
// path (onePass leaves it).
func TestEnvOnlyWhenAsked(t *testing.T) {
	seeds := CorpusInputs(t, "testdata/fuzz/FuzzAdmissionReview")
	ours := []corev1.EnvVar{{Name: "VAULT_TOKEN_FILE", Value: "/x"}}
	for _, tc := range []struct {
		seed string
		took bool
		env  []corev1.EnvVar // of the first container
	}{
		{"env-after-spec-conflicting", true, ours},
		{"env-spaced", true, ours},
		{"env-not-asked-not-a-list", true, nil},
		{"env-not-asked-wrong-types", true, nil},
		{"env-after-spec-not-a-list", false, nil},
	} {
		body, ok := seeds[tc.seed]
		if !ok {
			t.Fatalf("no seed %s", tc.seed)
		}
		_, fields, _, took := onePass(body, true)
		if took != tc.took {
			t.Errorf("%s: onePass took it: %v, want %v", tc.seed, took, tc.took)
			continue
		}
		if !took {
			continue
		}
		if got := fields.pod().Spec.Containers[0].Env; !reflect.DeepEqual(got, tc.env) {
			t.Errorf("%s: env %+v, want %+v", tc.seed, got, tc.env)
		}
		sameAsFramework(t, body)
	}
}

// pod is a Pod holding the fields read.
func (f *podFields) pod() *corev1.Pod {
	pod := &corev1.Pod{}
	f.into(pod)
	return pod
}
