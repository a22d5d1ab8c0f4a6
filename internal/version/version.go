// Package version says which build of token-projector is running: the
// release version (stamped by make release), the commit and the commit's
// time (recorded by the go command from git). Nothing here reads the clock,
// so two builds of one commit print the same.
package version

import (
	"fmt"
	"runtime/debug"
)

// Set at link time by make release (internal/release), which reads the
// commit from git itself: the go command records it only where it
// recognises the checkout (not in a git worktree, nor with -buildvcs=false).
//
//	-ldflags "-X github.com/token-projector/token-projector/internal/version.stamped=v0.1.0"
var (
	stamped           string
	stampedCommit     string
	stampedCommitTime string
)

// Info is what `webhook --version` prints.
type Info struct {
	// Version is the stamped release version, else the main module's
	// version as the go command records it (a tag, a pseudo-version, or
	// "(devel)").
	Version string
	// Commit is the git revision and CommitTime its commit time (RFC 3339),
	// empty when built outside git or with -buildvcs=false.
	Commit     string
	CommitTime string
	// Modified: the working tree had uncommitted changes.
	Modified bool
}

// Get reads the running binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	info := FromBuildInfo(bi, stamped)
	if stampedCommit != "" {
		info.Commit, info.CommitTime = stampedCommit, stampedCommitTime
	}
	return info
}

// FromBuildInfo reads bi, preferring the stamped version when set.
func FromBuildInfo(bi *debug.BuildInfo, stamped string) Info {
	info := Info{Version: stamped}
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	info.Version = orDevel(info.Version)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.time":
			info.CommitTime = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

func orDevel(v string) string {
	if v == "" {
		return "(devel)"
	}
	return v
}

// String is one line: "token-projector v0.1.0 commit 1a2b… (2026-01-02T03:04:05Z)",
// with ", modified" when the tree was dirty.
func (i Info) String() string {
	commit, when := i.Commit, i.CommitTime
	if commit == "" {
		commit = "unknown"
	}
	if when == "" {
		when = "unknown time"
	}
	s := fmt.Sprintf("token-projector %s commit %s (%s", i.Version, commit, when)
	if i.Modified {
		s += ", modified"
	}
	return s + ")"
}
