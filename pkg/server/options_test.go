package server

import (
	"flag"
	"io"
	"testing"
)

// TestLeaderElectionIDReachesTheManager: --leader-election-id names the
// manager's Lease (the chart passes one per release), and without it the
// Lease is the one config/ and earlier releases use.
func TestLeaderElectionIDReachesTheManager(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--leader-elect"}, "token-projector-reconciler"},
		{[]string{"--leader-elect", "--leader-election-id=team-a-token-projector-reconciler"}, "team-a-token-projector-reconciler"},
	} {
		o := DefaultOptions()
		fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.BindFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got := managerOptions(o, nil, nil)
		if !got.LeaderElection || got.LeaderElectionID != tc.want {
			t.Errorf("%v: manager's leader election %v through the Lease %q, want on through %q", tc.args, got.LeaderElection, got.LeaderElectionID, tc.want)
		}
	}
}
