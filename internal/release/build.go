package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Platforms are the platforms of a release's image index.
var Platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// versionVar is the variable that `webhook --version` prints.
const versionVar = "github.com/token-projector/token-projector/internal/version.stamped"

// BuildWebhook builds cmd/webhook of the module at root for platform p into
// out, as the Dockerfile does (static, trimmed paths), stamped with version
// and with the commit git reports (-buildvcs=true overrides a GOFLAGS that
// turns it off). Nothing of the build host or the clock enters the binary:
// two builds of one commit are byte-identical.
func BuildWebhook(ctx context.Context, root, version string, p v1.Platform, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=true",
		"-ldflags", "-s -w -X "+versionVar+"="+version, "-o", out, "./cmd/webhook")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOFLAGS=-buildvcs=true")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the webhook for %s: %w\n%s", p, err, b)
	}
	return nil
}
