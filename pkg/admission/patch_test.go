package admission

import (
	"encoding/json"
	"reflect"
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

// TestAppendStringIsMarshal: a string appendString writes is written as
// json.Marshal writes it, for every byte and for the runes encoding/json
// treats specially.
func TestAppendStringIsMarshal(t *testing.T) {
	cases := []string{"", "/spec/containers/0/volumeMounts/-", "token-projector.io~1status", "a b", "\u2028", "\u2029", "é", "\xff", "<>&", `{"audiences":["vault"]}`, `\\"`}
	for c := 0; c < 256; c++ {
		cases = append(cases, string([]byte{'x', byte(c), 'y'}))
	}
	written := 0
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := appendString(nil, s); ok {
			written++
			if string(got) != string(want) {
				t.Errorf("%q: written as %s, json.Marshal writes %s", s, got, want)
			}
		}
	}
	if written < 95 {
		t.Fatalf("only %d of %d strings were written", written, len(cases))
	}
}

// TestAppendPlainIsMarshal: whatever appendPlain writes is json.Marshal's
// encoding, for the values our patches hold and for look-alikes it must
// leave to encoding/json; the values mutate makes take its path.
func TestAppendPlainIsMarshal(t *testing.T) {
	mode, secs, other := int32(420), int64(3600), int32(0o600)
	token := func(aud string, secs *int64) corev1.VolumeProjection {
		return corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: aud, ExpirationSeconds: secs, Path: aud + "-token"}}
	}
	volume := func(sources ...corev1.VolumeProjection) corev1.Volume {
		return corev1.Volume{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources, DefaultMode: &mode}}}
	}
	recursive := corev1.RecursiveReadOnlyEnabled
	fast := []any{
		"plain", "/spec/volumes/-", "a\"b", `a\b`, `{"audiences":["vault"],"rbac":true}`,
		volume(token("vault", &secs)), volume(token("vault", &secs), token("sts.example.com", &secs)),
		volume(token("", nil)), volume(), volume([]corev1.VolumeProjection{}...),
		corev1.VolumeMount{Name: mutate.VolumeName, MountPath: "/var/run/secrets/tokens", ReadOnly: true},
		corev1.VolumeMount{Name: "x", MountPath: "/x"},
		corev1.EnvVar{Name: "VAULT_TOKEN_FILE", Value: "/var/run/secrets/tokens/vault-token"}, corev1.EnvVar{Name: "EMPTY"},
		map[string]string{mutate.AnnotationStatus: `{"audiences":["vault"]}`},
		map[string]string{mutate.LabelInjected: "true"},
		[]any{corev1.VolumeMount{Name: "x", MountPath: "/x", ReadOnly: true}},
		[]any{corev1.EnvVar{Name: "A", Value: "b"}},
		[]any{volume(token("vault", &secs))},
	}
	slow := []any{
		"<&>", "é", "\n", "\x7f", "\u2028",
		volume(token("<vault>", &secs)),
		corev1.Volume{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{token("vault", &secs)}}}},
		corev1.Volume{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: &other,
			Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}}}}},
		corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}, Projected: &corev1.ProjectedVolumeSource{DefaultMode: &mode}}},
		corev1.Volume{Name: "cache"},
		corev1.Volume{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: &mode, DefaultUser: &secs}}},
		volume(corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "p", User: &secs}}),
		corev1.VolumeMount{Name: "x", MountPath: "/x", SubPath: "y"},
		corev1.VolumeMount{Name: "x", MountPath: "/x", RecursiveReadOnly: &recursive},
		corev1.VolumeMount{Name: "x", MountPath: "/x", BindMountOptions: []string{"noexec"}},
		corev1.EnvVar{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: "A", Value: "<b>"},
		map[string]string{}, map[string]string{"a": "b", "c": "d"}, map[string]string{"a": "<"},
		[]any{}, []any{"a", "b"}, []any{corev1.Volume{Name: "cache"}},
		42, true, nil,
	}
	check := func(v any, wantFast bool) {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendPlain([]byte("prefix"), v)
		switch {
		case ok && string(got) != "prefix"+string(want):
			t.Errorf("%#v: appendPlain wrote %s, json.Marshal %s", v, got, want)
		case ok != wantFast:
			t.Errorf("%#v: appendPlain took it %v, want %v", v, ok, wantFast)
		}
	}
	for _, v := range fast {
		check(v, true)
	}
	for _, v := range slow {
		check(v, false)
	}
}

// TestAppendPlainKnowsEveryField fails when k8s.io/api adds a member to a
// type appendPlain writes: it must then learn to leave values that set it
// to encoding/json (appendMount's list of unset members, and the struct
// comparisons of the others).
func TestAppendPlainKnowsEveryField(t *testing.T) {
	for typ, n := range map[reflect.Type]int{
		reflect.TypeFor[corev1.VolumeMount]():                   8,
		reflect.TypeFor[corev1.EnvVar]():                        3,
		reflect.TypeFor[corev1.Volume]():                        2,
		reflect.TypeFor[corev1.ProjectedVolumeSource]():         3,
		reflect.TypeFor[corev1.ServiceAccountTokenProjection](): 4,
	} {
		if got := typ.NumField(); got != n {
			t.Errorf("%v has %d fields, appendPlain knows %d: teach it the new ones", typ, got, n)
		}
	}
}
