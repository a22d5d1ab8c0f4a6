// Package tokencheck is the report that cmd/tokencheck serves from inside
// test/cluster's pods and the tests decode.
package tokencheck

// Port is where cmd/tokencheck serves its Report.
const Port = 8080

// Report is what a pod's container found.
type Report struct {
	UID, GID int
	// Token is the projected token's content; TokenError why it could not
	// be read.
	Token      string
	TokenError string `json:",omitempty"`
	// FileMode, FileUID: the token file's permissions and owner.
	FileMode string
	FileUID  int
	// SelfStatus and OtherStatus are the HTTP status codes of TokenRequests
	// for the pod's own account (ServiceAccount) and for OtherAccount;
	// RequestError says why they could not be made.
	ServiceAccount string
	SelfStatus     int
	OtherAccount   string
	OtherStatus    int
	RequestError   string `json:",omitempty"`
	// EnvVar is the variable tokencheck was asked to follow (-token-env),
	// EnvValue its value, and EnvSameToken whether the file it names holds
	// the projected token read above; EnvError why it could not be read.
	EnvVar       string `json:",omitempty"`
	EnvValue     string `json:",omitempty"`
	EnvSameToken bool   `json:",omitempty"`
	EnvError     string `json:",omitempty"`
}
