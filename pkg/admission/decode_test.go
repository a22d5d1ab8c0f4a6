package admission

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/bench/fixture"
)

// TestPodFieldsAreWhatMutateReads decodes every golden pod of pkg/mutate,
// and the benchmarks' pod, both whole and as podFields (decodePod: env only
// for a pod asking for token-file-env), and checks that
// mutate.Mutate and the patch come out the same: if pkg/mutate starts
// reading a field podFields leaves out, a golden case that uses it fails
// here. The metadata read is the names, labels and annotations; the volumes
// read are every volume's name and the token volume whole.
func TestPodFieldsAreWhatMutateReads(t *testing.T) {
	raws := map[string][]byte{}
	for name, pod := range GoldenPods(t) {
		raws[name] = []byte(pod)
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
			read := &corev1.Pod{}
			if err := decodePod(raw, read); err != nil {
				t.Fatal(err)
			}
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
			m := whole.ObjectMeta
			readMeta := metav1.ObjectMeta{Name: m.Name, GenerateName: m.GenerateName, Namespace: m.Namespace, Labels: m.Labels, Annotations: m.Annotations}
			if diff := cmp.Diff(readMeta, read.ObjectMeta); diff != "" {
				t.Errorf("metadata differs (-whole's names, labels and annotations +read fields):\n%s", diff)
			}
			if len(read.Spec.Volumes) != len(whole.Spec.Volumes) {
				t.Fatalf("%d volumes read, the pod has %d", len(read.Spec.Volumes), len(whole.Spec.Volumes))
			}
			for i, v := range read.Spec.Volumes {
				want := corev1.Volume{Name: whole.Spec.Volumes[i].Name}
				if v.Name == mutate.VolumeName {
					want = whole.Spec.Volumes[i]
				}
				if !equality.Semantic.DeepEqual(want, v) {
					t.Errorf("volume %d read as %+v, want %+v (the token volume whole, the others by name)", i, v, want)
				}
			}
		})
	}
}

// TestReadMountKnowsEveryField fails when corev1.VolumeMount gains a
// member readMount does not read: it would be skipped, and the mount
// compared or written without it.
func TestReadMountKnowsEveryField(t *testing.T) {
	var names []string
	typ := reflect.TypeFor[corev1.VolumeMount]()
	for i := range typ.NumField() {
		names = append(names, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
	}
	if !slices.Equal(names, mountMembers) {
		t.Errorf("corev1.VolumeMount's members are %v; readMount reads %v", names, mountMembers)
	}
}

// TestEnvelopeKnowsEveryField fails when admissionv1.AdmissionRequest,
// authenticationv1.UserInfo or the kinds and resources in them gain a
// member the one pass does not read.
func TestEnvelopeKnowsEveryField(t *testing.T) {
	for _, tc := range []struct {
		typ  reflect.Type
		read []string
	}{
		{reflect.TypeFor[admissionv1.AdmissionRequest](), requestMembers},
		{reflect.TypeFor[authenticationv1.UserInfo](), userInfoMembers},
		{reflect.TypeFor[metav1.GroupVersionKind](), []string{"group", "version", "kind"}},
		{reflect.TypeFor[metav1.GroupVersionResource](), []string{"group", "version", "resource"}},
	} {
		var names []string
		for i := range tc.typ.NumField() {
			names = append(names, strings.Split(tc.typ.Field(i).Tag.Get("json"), ",")[0])
		}
		if !slices.Equal(names, tc.read) {
			t.Errorf("%s's members are %v; the one pass reads %v", tc.typ, names, tc.read)
		}
	}
}
