package admission

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// patchOps is the response's patch: add-only operations built from what
// pkg/mutate decided, never a re-marshal and diff of the pod.
func patchOps(pod *corev1.Pod, c *mutate.Changes) []jsonpatch.JsonPatchOperation {
	return c.JSONPatch(pod)
}

// patchEncoder hands Response.Complete a finished patch: the bytes its
// json.Marshal of the operations would write, without the detour through
// each operation's MarshalJSON and the re-scan of its output (half the
// cost; 8.6 % of the webhook's CPU under load, make bench profile).
type patchEncoder struct {
	admission.Handler
}

func (p patchEncoder) Handle(ctx context.Context, req admission.Request) admission.Response {
	resp := p.Handler.Handle(ctx, req)
	if patch, ok := encodePatch(resp.Patches); ok {
		patchType := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType, resp.Patches = patch, &patchType, nil
	}
	return resp
}

// patches are the buffers patches are written in: ServeHTTP gives each
// back once the answer is written (recycle). Our patches are about
// 1.5 KB; a fresh buffer per admission was a tenth of the bytes allocated.
var patches = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// encodePatch writes ops as json.Marshal does. An operation without a value
// (never ours) is left to Complete.
func encodePatch(ops []jsonpatch.JsonPatchOperation) ([]byte, bool) {
	if len(ops) == 0 {
		return nil, false
	}
	b := (*patches.Get().(*[]byte))[:0]
	b = append(b, '[')
	var err error
	for i := range ops {
		if ops[i].Value == nil {
			return nil, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"op":`...)
		if b, err = appendStringValue(b, ops[i].Operation); err != nil {
			return nil, false
		}
		b = append(b, `,"path":`...)
		if b, err = appendStringValue(b, ops[i].Path); err != nil {
			return nil, false
		}
		b = append(b, `,"value":`...)
		if b, err = appendValue(b, ops[i].Value); err != nil {
			return nil, false
		}
		b = append(b, '}')
	}
	return append(b, ']'), true
}

// appendValue writes v as json.Marshal does: the values our patches hold
// here (appendPlain), anything else through encoding/json. Each
// encoding/json call is a trip through reflection: they were a tenth of
// an admission's allocations.
func appendValue(b []byte, v any) ([]byte, error) {
	if out, ok := appendPlain(b, v); ok {
		return out, nil
	}
	enc, err := json.Marshal(v)
	return append(b, enc...), err
}

// appendStringValue is appendValue of a string, which does not box s into
// an interface (an allocation) unless encoding/json must write it.
func appendStringValue(b []byte, s string) ([]byte, error) {
	if out, ok := appendString(b, s); ok {
		return out, nil
	}
	return appendValue(b, s)
}

// appendPlain appends v to b as json.Marshal writes it, for the values our
// patches hold when every string in them is one appendString writes and
// they have exactly the shape mutate makes; anything else is left to
// encoding/json (false). TestEncodePatchIsMarshal and
// TestAppendPlainIsMarshal hold it to json.Marshal.
func appendPlain(b []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case string:
		return appendString(b, v)
	case corev1.VolumeMount:
		return appendMount(b, &v)
	case corev1.EnvVar:
		return appendEnvVar(b, &v)
	case corev1.Volume:
		return appendTokenVolume(b, &v)
	case map[string]string:
		if len(v) != 1 {
			return b, false
		}
		for k, val := range v {
			b = append(b, '{')
			b, ok := appendString(b, k)
			if !ok {
				return b, false
			}
			b = append(b, ':')
			if b, ok = appendString(b, val); !ok {
				return b, false
			}
			return append(b, '}'), true
		}
	case []any:
		if len(v) != 1 {
			return b, false
		}
		b = append(b, '[')
		b, ok := appendPlain(b, v[0])
		if !ok {
			return b, false
		}
		return append(b, ']'), true
	}
	return b, false
}

// appendString writes s as json.Marshal does if s is printable ASCII
// without the characters it escapes for HTML (<, >, &): quotes and
// backslashes escaped with a backslash (the status annotation is JSON).
func appendString(b []byte, s string) ([]byte, bool) {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&':
			return b, false
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"'), true
}

// appendMount writes a mount with a name, a path and readOnly, nothing
// else: corev1.VolumeMount's members in its order, empty ones omitted.
func appendMount(b []byte, m *corev1.VolumeMount) ([]byte, bool) {
	if m.RecursiveReadOnly != nil || m.SubPath != "" || m.MountPropagation != nil || m.SubPathExpr != "" || m.BindMountOptions != nil {
		return b, false
	}
	b = append(b, `{"name":`...)
	b, ok := appendString(b, m.Name)
	if !ok {
		return b, false
	}
	if m.ReadOnly {
		b = append(b, `,"readOnly":true`...)
	}
	b = append(b, `,"mountPath":`...)
	if b, ok = appendString(b, m.MountPath); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// appendEnvVar writes a variable with a name and a value (valueFrom unset).
func appendEnvVar(b []byte, e *corev1.EnvVar) ([]byte, bool) {
	if e.ValueFrom != nil {
		return b, false
	}
	b = append(b, `{"name":`...)
	b, ok := appendString(b, e.Name)
	if !ok {
		return b, false
	}
	if e.Value != "" {
		b = append(b, `,"value":`...)
		if b, ok = appendString(b, e.Value); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendTokenVolume writes a projected volume of serviceAccountToken
// sources with a default mode, as mutate.Spec.Volume makes it.
func appendTokenVolume(b []byte, v *corev1.Volume) ([]byte, bool) {
	p := v.Projected
	if p == nil || v.VolumeSource != (corev1.VolumeSource{Projected: p}) || p.DefaultMode == nil || p.DefaultUser != nil {
		return b, false
	}
	b = append(b, `{"name":`...)
	b, ok := appendString(b, v.Name)
	if !ok {
		return b, false
	}
	b = append(b, `,"projected":{"sources":`...)
	if p.Sources == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range p.Sources {
			src := &p.Sources[i]
			t := src.ServiceAccountToken
			if t == nil || *src != (corev1.VolumeProjection{ServiceAccountToken: t}) || t.User != nil {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"serviceAccountToken":{`...)
			sep := ""
			if t.Audience != "" {
				b = append(b, `"audience":`...)
				if b, ok = appendString(b, t.Audience); !ok {
					return b, false
				}
				sep = ","
			}
			if t.ExpirationSeconds != nil {
				b = append(b, sep+`"expirationSeconds":`...)
				b = strconv.AppendInt(b, *t.ExpirationSeconds, 10)
				sep = ","
			}
			b = append(b, sep+`"path":`...)
			if b, ok = appendString(b, t.Path); !ok {
				return b, false
			}
			b = append(b, "}}"...)
		}
		b = append(b, ']')
	}
	b = append(b, `,"defaultMode":`...)
	b = strconv.AppendInt(b, int64(*p.DefaultMode), 10)
	return append(b, "}}"...), true
}
