package admission

import (
	"bytes"
	"errors"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	corev1 "k8s.io/api/core/v1"
)

// onePass reads a pod's fields (podFields, metaIn, containerFields) member
// by member from the decoder's tokens rather than through encoding/json/v2's
// reflection: a pod is mostly members the handler does not read, and for
// each v2 looked its name up twice (as written, then case-folded) before
// skipping it. What these read is what v2 made of the same members
// (TestOnePassIsTheFrameworkDecode and FuzzReviewDecode hold both to the
// framework's decode); anything they would have to judge more finely (a
// null label, say) is refused, and the review takes the framework's path.

// errNotPlain refuses a member these readers leave to the framework.
var errNotPlain = errors.New("not a pod member the one pass reads")

// readFrom reads a pod, its metadata and spec, nothing else, from dec,
// which reads body.
func (f *podFields) readFrom(dec *jsontext.Decoder, body []byte) error {
	f.body = body
	return readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		switch string(name) {
		case "metadata":
			return readObject(dec, f.Metadata.member)
		case "spec":
			return readObject(dec, f.specMember)
		}
		return dec.SkipValue()
	})
}

func (m *metaIn) member(dec *jsontext.Decoder, name []byte) error {
	switch string(name) {
	case "name":
		return readString(dec, &m.Name)
	case "generateName":
		return readString(dec, &m.GenerateName)
	case "namespace":
		return readString(dec, &m.Namespace)
	case "labels":
		return readStringMap(dec, &m.Labels)
	case "annotations":
		return readStringMap(dec, &m.Annotations)
	}
	return dec.SkipValue()
}

func (f *podFields) specMember(dec *jsontext.Decoder, name []byte) error {
	s := &f.Spec
	switch string(name) {
	case "volumes":
		return readArray(dec, &s.Volumes, 4, func(v *volumeIn, dec *jsontext.Decoder) error { return v.readFrom(dec, f.body) })
	case "initContainers":
		return readArray(dec, &s.InitContainers, 2, (*containerFields).readFrom)
	case "containers":
		return readArray(dec, &s.Containers, 4, (*containerFields).readFrom)
	case "serviceAccountName":
		return readString(dec, &s.ServiceAccountName)
	case "serviceAccount":
		return readString(dec, &s.DeprecatedServiceAccount)
	}
	return dec.SkipValue()
}

// readFrom reads a container: its name, mounts and env.
func (c *containerFields) readFrom(dec *jsontext.Decoder) error {
	return readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		switch string(name) {
		case "name":
			return readString(dec, &c.Name)
		case "volumeMounts":
			return readArray(dec, &c.VolumeMounts, 2, readMount)
		case "env":
			return c.Env.UnmarshalJSONFrom(dec)
		}
		return dec.SkipValue()
	})
}

// mountMembers are the members of corev1.VolumeMount readMount reads
// (TestReadMountKnowsEveryField fails when k8s.io/api adds one).
var mountMembers = []string{"name", "readOnly", "recursiveReadOnly", "mountPath", "subPath", "mountPropagation", "subPathExpr", "bindMountOptions"}

// readMount reads a volume mount: its strings and readOnly here, its
// rarer members through v2.
func readMount(m *corev1.VolumeMount, dec *jsontext.Decoder) error {
	return readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		switch string(name) {
		case "name":
			return readString(dec, &m.Name)
		case "readOnly":
			return readBool(dec, &m.ReadOnly)
		case "mountPath":
			return readString(dec, &m.MountPath)
		case "subPath":
			return readString(dec, &m.SubPath)
		case "subPathExpr":
			return readString(dec, &m.SubPathExpr)
		case "recursiveReadOnly":
			return jsonv2.UnmarshalDecode(dec, &m.RecursiveReadOnly)
		case "mountPropagation":
			return jsonv2.UnmarshalDecode(dec, &m.MountPropagation)
		case "bindMountOptions":
			return jsonv2.UnmarshalDecode(dec, &m.BindMountOptions)
		}
		return dec.SkipValue()
	})
}

// readObject reads an object, giving each member's name, unquoted, to
// member, which must read its value. The decoder refuses a name an object
// repeats, as it did under v2.
func readObject(dec *jsontext.Decoder, member func(*jsontext.Decoder, []byte) error) error {
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '{' {
		return errNotPlain
	}
	var unquoted []byte
	for dec.PeekKind() == '"' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		if bytes.IndexByte(name, '\\') < 0 {
			name = name[1 : len(name)-1]
		} else if unquoted, err = jsontext.AppendUnquote(unquoted[:0], name); err != nil {
			return err
		} else {
			name = unquoted
		}
		if err := member(dec, name); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken() // '}', or what the decoder refuses
	return err
}

// readString reads a string; null is refused.
func readString(dec *jsontext.Decoder, into *string) error {
	if dec.PeekKind() != '"' {
		return errNotPlain // or what the decoder refuses
	}
	raw, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		*into = intern(raw[1 : len(raw)-1])
		return nil
	}
	unquoted, err := jsontext.AppendUnquote(nil, raw)
	*into = string(unquoted)
	return err
}

// readStringMap reads an object of strings into a new map; null and a
// null value are refused.
func readStringMap(dec *jsontext.Decoder, into *map[string]string) error {
	m := map[string]string{}
	err := readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		var v string
		if err := readString(dec, &v); err != nil {
			return err
		}
		m[intern(name)] = v
		return nil
	})
	*into = m
	return err
}

// readArray reads an array of elements, each by read, into a slice made
// for capacity of them (what pods usually hold: growing it from one was a
// tenth of the decode's allocations); null is refused.
func readArray[T any](dec *jsontext.Decoder, into *[]T, capacity int, read func(*T, *jsontext.Decoder) error) error {
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '[' {
		return errNotPlain
	}
	s := make([]T, 0, capacity)
	for dec.PeekKind() != ']' && dec.PeekKind() != 0 {
		var zero T
		s = append(s, zero) // read in place: an element of its own would escape
		if err := read(&s[len(s)-1], dec); err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	*into = s
	return nil
}
