package testenv

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebhookTakesOnlyABinaryBuiltLikeTheImage: a prebuilt binary in
// WEBHOOK_BINARY (make test's, shared by every tier) is run only if it was
// built as BuildWebhook and the Dockerfile build it; one built otherwise is
// refused, naming what differs.
func TestWebhookTakesOnlyABinaryBuiltLikeTheImage(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	built, err := BuildWebhook(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(WebhookBinaryEnv, built)
	if got, err := WebhookBinary(root, t.TempDir()); err != nil || got != built {
		t.Errorf("WebhookBinary with %s=%s gave %q, %v; want that binary", WebhookBinaryEnv, built, got, err)
	}

	plain := filepath.Join(t.TempDir(), "webhook")
	cmd := exec.Command("go", "build", "-trimpath", "-o", plain, "./cmd/webhook")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Setenv(WebhookBinaryEnv, plain)
	if _, err := WebhookBinary(root, t.TempDir()); err == nil || !strings.Contains(err.Error(), "-ldflags") {
		t.Errorf("WebhookBinary with a binary built without -ldflags=-s -w gave %v, want an error naming -ldflags", err)
	}

	t.Setenv(WebhookBinaryEnv, "")
	dir := t.TempDir()
	if got, err := WebhookBinary(root, dir); err != nil || got != filepath.Join(dir, "webhook") {
		t.Errorf("WebhookBinary without %s gave %q, %v; want a build in %s", WebhookBinaryEnv, got, err, dir)
	}
}
