package admission

import (
	"bytes"
	"context"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// decodePod reads the fields of a pod the handler uses from the request's
// raw object. Plain JSON rather than the universal deserializer: the request
// says what the object is, and scanning it again costs CPU on every
// admission. Case-sensitive, as kube-apiserver decodes: encoding/json would
// read "Spec" as spec, and the patch would then add to a "/spec" the object
// does not have.
func decodePod(raw []byte, pod *corev1.Pod) error {
	if err := unambiguous(raw); err != nil {
		return err
	}
	var f podFields
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &f); err != nil {
		return err
	}
	if err := f.decodeEnv(unmarshalCaseSensitive, func(e *envIn) []byte { return e.raw }); err != nil {
		return err
	}
	f.into(pod)
	return nil
}

// unambiguous refuses an object that JSON parsers may read differently: one
// that repeats a name within an object (encoding/json merges the two, the
// JSON Patch library kube-apiserver applies our patch with keeps the last)
// or holds bytes that are not UTF-8. kube-apiserver never sends either; a
// forged review could, to have the webhook judge one pod and the patch
// apply to another. (onePass refuses both on its own.)
func unambiguous(raw []byte) error {
	if err := jsontext.NewDecoder(bytes.NewReader(raw)).SkipValue(); err != nil {
		return fmt.Errorf("the object is not JSON that every parser reads alike: %w", err)
	}
	return nil
}

// requestPod reads the pod fields of a request's raw object: those Lean
// decoded in the review's pass when they are there for exactly these bytes,
// else decodePod's.
func requestPod(ctx context.Context, raw []byte, pod *corev1.Pod) error {
	if d, ok := ctx.Value(decodedPodKey{}).(*decodedPod); ok && d.of(raw) {
		d.fields.into(pod)
		return nil
	}
	return decodePod(raw, pod)
}

// decodedPod is a pod's fields decoded from raw, handed from Lean to the
// handler in the request's context.
type decodedPod struct {
	raw    []byte
	fields *podFields
}

type decodedPodKey struct{}

func withDecodedPod(ctx context.Context, raw []byte, fields *podFields) context.Context {
	return context.WithValue(ctx, decodedPodKey{}, &decodedPod{raw: raw, fields: fields})
}

// of reports whether d was decoded from raw itself, the very bytes (not a
// copy) of the request the handler was given: a context that outlives its
// request, or a request another layer changed, never supplies the fields.
func (d *decodedPod) of(raw []byte) bool {
	return len(raw) > 0 && len(raw) == len(d.raw) && &raw[0] == &d.raw[0]
}

// podFields are the fields of a pod the handler reads: of its metadata
// (metaIn) what screening, the log line and Events read, and what
// mutate.Mutate and the patch read of its spec (the account fields, the
// volumes' names and the token volume whole, each container's and init
// container's name, volume mounts and, for a pod that asks for
// token-file-env, env). Every other field is skipped by the decoder instead
// of being built: half the cost of decoding a 5 KB pod.
// TestPodFieldsAreWhatMutateReads keeps this list in step with pkg/mutate.
type podFields struct {
	// body is the review onePass reads the pod from (readFrom).
	body     []byte
	Metadata metaIn `json:"metadata"`
	Spec     struct {
		Volumes                  []volumeIn        `json:"volumes"`
		InitContainers           []containerFields `json:"initContainers"`
		Containers               []containerFields `json:"containers"`
		ServiceAccountName       string            `json:"serviceAccountName"`
		DeprecatedServiceAccount string            `json:"serviceAccount"`
	} `json:"spec"`
}

// metaIn is the metadata the handler reads of a pod: its names (the log
// line, a denial's Event, the namespace check) and its labels and
// annotations. Owner references, managed fields (kube-apiserver sends a
// created pod's), timestamps and the rest are skipped, not built.
type metaIn struct {
	Name         string            `json:"name"`
	GenerateName string            `json:"generateName"`
	Namespace    string            `json:"namespace"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
}

// volumeIn is a pod's volume as the handler reads it: its name, and the
// whole volume only if it is the token volume (mutate.VolumeName), which
// mutate compares with the one it would add. The others count only by
// name: decoding each whole (the kube-api-access volume alone is a
// projection of three sources) was a sixth of an admission's allocations.
type volumeIn struct {
	name  string
	whole *corev1.Volume
}

// volumeName is the one member of a volume decoded for every volume.
type volumeName struct {
	Name string `json:"name"`
}

// readFrom is onePass's read: the value read for its name alone, and
// decoded whole, from its bytes in body, when it is the token volume.
func (v *volumeIn) readFrom(dec *jsontext.Decoder, body []byte) error {
	start := dec.InputOffset() // just after the '[' or the volume before
	err := readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		if string(name) == "name" {
			return readString(dec, &v.name)
		}
		return dec.SkipValue()
	})
	if err != nil || v.name != mutate.VolumeName {
		return err
	}
	v.whole = &corev1.Volume{}
	return unmarshalV2(valueAt(body, start, dec.InputOffset()), v.whole)
}

// UnmarshalJSON is decodePod's read (sigs.k8s.io/json, which checked the
// whole object first).
func (v *volumeIn) UnmarshalJSON(b []byte) error {
	var n volumeName
	if err := unmarshalCaseSensitive(b, &n); err != nil {
		return err
	}
	v.name = n.Name
	if n.Name != mutate.VolumeName {
		return nil
	}
	v.whole = &corev1.Volume{}
	return unmarshalCaseSensitive(b, v.whole)
}

type containerFields struct {
	Name         string               `json:"name"`
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts"`
	Env          envIn                `json:"env"`
}

// envIn is a container's env as a pod's first decode reads it: validated
// and skipped, with only where its value is recorded. decodeEnv decodes it
// for a pod that asks for token-file-env, the one feature that reads env:
// decoding every container's env was 19 of the 254 allocations of an
// admission of the benchmark's pod, paid by every pod for what few ask for.
// An env that would not decode therefore refuses only such a pod, as any
// other field the handler does not read refuses none.
type envIn struct {
	raw        []byte // decodePod's read: a copy of the value
	start, end int64  // onePass's read: the value's offsets in the review
	vars       []corev1.EnvVar
}

// UnmarshalJSONFrom is onePass's read: the value is checked as it is
// skipped, and its offsets kept.
func (e *envIn) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	start := dec.InputOffset() // just after the name "env"
	if err := dec.SkipValue(); err != nil {
		return err
	}
	e.start, e.end = start, dec.InputOffset()
	return nil
}

// UnmarshalJSON is decodePod's read (sigs.k8s.io/json, which checked the
// whole object first): the value's bytes, copied as its contract asks.
func (e *envIn) UnmarshalJSON(b []byte) error {
	e.raw = bytes.Clone(b)
	return nil
}

// decodeEnv decodes the env of every container and init container of a pod
// that asks for token-file-env, each from the bytes valueOf gives for it
// (none: no env), with decode, the decoder that read the rest of the pod.
// A pod that does not ask keeps no env at all.
func (f *podFields) decodeEnv(decode func([]byte, any) error, valueOf func(*envIn) []byte) error {
	if _, asks := f.Metadata.Annotations[mutate.AnnotationTokenFileEnv]; !asks {
		return nil
	}
	for _, cs := range [][]containerFields{f.Spec.InitContainers, f.Spec.Containers} {
		for i := range cs {
			e := &cs[i].Env
			if v := valueOf(e); len(v) > 0 {
				if err := decode(v, &e.vars); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// unmarshalCaseSensitive is decodePod's decoder.
func unmarshalCaseSensitive(b []byte, v any) error {
	return sigsjson.UnmarshalCaseSensitivePreserveInts(b, v)
}

// into sets pod to a Pod holding the fields read: filled in place, as a
// Pod returned would be one more allocation of a kilobyte per admission.
func (f *podFields) into(pod *corev1.Pod) {
	m := &f.Metadata
	*pod = corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, GenerateName: m.GenerateName, Namespace: m.Namespace, Labels: m.Labels, Annotations: m.Annotations,
	}, Spec: corev1.PodSpec{
		Volumes:                  volumes(f.Spec.Volumes),
		InitContainers:           containers(f.Spec.InitContainers),
		Containers:               containers(f.Spec.Containers),
		ServiceAccountName:       f.Spec.ServiceAccountName,
		DeprecatedServiceAccount: f.Spec.DeprecatedServiceAccount,
	}}
}

// volumes are the volumes read: the token volume whole, the others by
// name.
func volumes(vs []volumeIn) []corev1.Volume {
	if vs == nil {
		return nil
	}
	out := make([]corev1.Volume, len(vs))
	for i, v := range vs {
		if v.whole != nil {
			out[i] = *v.whole
		} else {
			out[i].Name = v.name
		}
	}
	return out
}

func containers(fs []containerFields) []corev1.Container {
	if fs == nil {
		return nil
	}
	out := make([]corev1.Container, len(fs))
	for i, c := range fs {
		out[i].Name, out[i].VolumeMounts, out[i].Env = c.Name, c.VolumeMounts, c.Env.vars
	}
	return out
}
