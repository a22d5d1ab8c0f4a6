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
	// Env are the variables tokencheck was asked to follow (-token-env), in
	// that order.
	Env []EnvCheck `json:",omitempty"`
}

// EnvCheck is one environment variable naming a token file: its value, and
// whether the file it names holds the projected token the Report read;
// Error says why it could not be read.
type EnvCheck struct {
	Name      string
	Value     string `json:",omitempty"`
	SameToken bool   `json:",omitempty"`
	Error     string `json:",omitempty"`
}
