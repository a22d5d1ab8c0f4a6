package release

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Source is the commit a release is built from.
type Source struct {
	// Commit is the full git revision of HEAD.
	Commit string
	// Time is the commit time: the image's creation time, so that two
	// builds of one commit agree.
	Time time.Time
}

// GitSource reads HEAD of the repository at root.
func GitSource(root string) (Source, error) {
	out, err := exec.Command("git", "-C", root, "show", "-s", "--format=%H %ct", "HEAD").Output()
	if err != nil {
		return Source{}, fmt.Errorf("reading the commit at %s: %w", root, err)
	}
	var s Source
	var unix int64
	if _, err := fmt.Sscan(strings.TrimSpace(string(out)), &s.Commit, &unix); err != nil {
		return Source{}, fmt.Errorf("reading the commit at %s: %q: %w", root, out, err)
	}
	s.Time = time.Unix(unix, 0).UTC()
	return s, nil
}

// semver is a release version as tagged: v, then SemVer 2.0 without build
// metadata (an OCI tag cannot carry "+").
var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

// ChartVersion returns the chart's version and appVersion, and the image's
// tag, for a release version: v0.1.0 gives 0.1.0, as Helm wants.
func ChartVersion(version string) (string, error) {
	if !semver.MatchString(version) {
		return "", fmt.Errorf("version %q: want a tag like v0.1.0 or v0.2.0-rc.1", version)
	}
	return strings.TrimPrefix(version, "v"), nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
