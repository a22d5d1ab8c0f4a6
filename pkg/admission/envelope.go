package admission

import (
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The review around the pod, read member by member as the pod is
// (fields.go), rather than through v2's reflection over
// admissionv1.AdmissionRequest: cheaper, and shallower on the goroutine's
// stack, whose growth under the decode was a copy per admission.
// TestEnvelopeKnowsEveryField fails when k8s.io/api adds a member.

// UnmarshalJSONFrom reads a review: its apiVersion, kind, request and
// response. A null request leaves none.
func (r *reviewIn) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	return readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		switch string(name) {
		case "apiVersion":
			return readString(dec, &r.APIVersion)
		case "kind":
			return readString(dec, &r.Kind)
		case "request":
			if dec.PeekKind() == 'n' {
				r.Request = nil
				return dec.SkipValue()
			}
			if r.Request == nil {
				return errNotPlain // a second request: the decoder refuses it anyway
			}
			return r.Request.read(dec)
		case "response":
			return jsonv2.UnmarshalDecode(dec, &r.Response)
		}
		return dec.SkipValue()
	})
}

// requestMembers are the members of admissionv1.AdmissionRequest read.
var requestMembers = []string{"uid", "kind", "resource", "subResource", "requestKind", "requestResource", "requestSubResource",
	"name", "namespace", "operation", "userInfo", "object", "oldObject", "dryRun", "options"}

func (r *requestIn) read(dec *jsontext.Decoder) error {
	q := &r.AdmissionRequest
	return readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		switch string(name) {
		case "uid":
			return readStringAs(dec, &q.UID)
		case "kind":
			return readGVK(dec, &q.Kind)
		case "resource":
			return readGVR(dec, &q.Resource)
		case "subResource":
			return readString(dec, &q.SubResource)
		case "requestKind":
			q.RequestKind = &metav1.GroupVersionKind{}
			return readGVK(dec, q.RequestKind)
		case "requestResource":
			q.RequestResource = &metav1.GroupVersionResource{}
			return readGVR(dec, q.RequestResource)
		case "requestSubResource":
			return readString(dec, &q.RequestSubResource)
		case "name":
			return readString(dec, &q.Name)
		case "namespace":
			return readString(dec, &q.Namespace)
		case "operation":
			return readStringAs(dec, &q.Operation)
		case "userInfo":
			return readUserInfo(dec, &q.UserInfo)
		case "object":
			return r.Object.UnmarshalJSONFrom(dec)
		case "oldObject":
			return r.OldObject.UnmarshalJSONFrom(dec)
		case "dryRun":
			var b bool
			q.DryRun = &b
			return readBool(dec, q.DryRun)
		case "options":
			return r.Options.UnmarshalJSONFrom(dec)
		}
		return dec.SkipValue()
	})
}

// readStringAs reads a string into a string type (types.UID, Operation).
func readStringAs[S ~string](dec *jsontext.Decoder, into *S) error {
	var s string
	err := readString(dec, &s)
	*into = S(s)
	return err
}

func readGVK(dec *jsontext.Decoder, into *metav1.GroupVersionKind) error {
	return readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		switch string(name) {
		case "group":
			return readString(dec, &into.Group)
		case "version":
			return readString(dec, &into.Version)
		case "kind":
			return readString(dec, &into.Kind)
		}
		return dec.SkipValue()
	})
}

func readGVR(dec *jsontext.Decoder, into *metav1.GroupVersionResource) error {
	return readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		switch string(name) {
		case "group":
			return readString(dec, &into.Group)
		case "version":
			return readString(dec, &into.Version)
		case "resource":
			return readString(dec, &into.Resource)
		}
		return dec.SkipValue()
	})
}

// userInfoMembers are the members of authenticationv1.UserInfo read.
var userInfoMembers = []string{"username", "uid", "groups", "extra"}

func readUserInfo(dec *jsontext.Decoder, into *authenticationv1.UserInfo) error {
	return readObject(dec, func(dec *jsontext.Decoder, name []byte) error {
		switch string(name) {
		case "username":
			return readString(dec, &into.Username)
		case "uid":
			return readString(dec, &into.UID)
		case "groups":
			return readArray(dec, &into.Groups, 4, func(s *string, dec *jsontext.Decoder) error { return readString(dec, s) })
		case "extra":
			return jsonv2.UnmarshalDecode(dec, &into.Extra)
		}
		return dec.SkipValue()
	})
}

// readBool reads true or false; null is refused.
func readBool(dec *jsontext.Decoder, into *bool) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if k := tok.Kind(); k != 't' && k != 'f' {
		return errNotPlain
	}
	*into = tok.Bool()
	return nil
}
