package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildWebhook builds cmd/webhook into dir the way the Dockerfile does
// (CGO_ENABLED=0, -trimpath: a static binary for a distroless image) and
// returns its path.
func BuildWebhook(root, dir string) (string, error) {
	out := filepath.Join(dir, "webhook")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/webhook")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cmd/webhook: %w\n%s", err, b)
	}
	return out, nil
}
