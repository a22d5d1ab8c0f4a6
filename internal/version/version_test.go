package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/token-projector/token-projector", Version: "v0.0.0-20260102030405-1a2b3c4d5e6f+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1a2b3c4d5e6f"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, c := range []struct {
		stamped, want string
	}{
		{"v0.1.0", "token-projector v0.1.0 commit 1a2b3c4d5e6f (2026-01-02T03:04:05Z, modified)"},
		{"", "token-projector v0.0.0-20260102030405-1a2b3c4d5e6f+dirty commit 1a2b3c4d5e6f (2026-01-02T03:04:05Z, modified)"},
	} {
		if got := FromBuildInfo(bi, c.stamped).String(); got != c.want {
			t.Errorf("stamped %q: got %q, want %q", c.stamped, got, c.want)
		}
	}
	bare := FromBuildInfo(&debug.BuildInfo{}, "").String()
	if want := "token-projector (devel) commit unknown (unknown time)"; bare != want {
		t.Errorf("no build info: got %q, want %q", bare, want)
	}
}
