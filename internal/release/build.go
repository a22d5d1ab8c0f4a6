package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Platforms are the platforms of a release's image index.
var Platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// versionPkg holds the variables that `webhook --version` prints.
const versionPkg = "github.com/token-projector/token-projector/internal/version"

// BuildWebhook builds cmd/webhook of the module at root for platform p into
// out, as the Dockerfile does (static, trimmed paths), stamped with version
// and the commit src. Nothing of the build host or the clock enters the
// binary: two builds of one commit are byte-identical.
func BuildWebhook(ctx context.Context, root, version string, src Source, p v1.Platform, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	ldflags := fmt.Sprintf("-s -w -X %[1]s.stamped=%[2]s -X %[1]s.stampedCommit=%[3]s -X %[1]s.stampedCommitTime=%[4]s",
		versionPkg, version, src.Commit, src.Time.UTC().Format(time.RFC3339))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/webhook")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the webhook for %s: %w\n%s", p, err, b)
	}
	return nil
}
