package testenv

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// WebhookBinaryEnv names a webhook binary built beforehand, as BuildWebhook
// builds it, for the tests to run instead of building their own: make test
// builds one for every tier.
const WebhookBinaryEnv = "WEBHOOK_BINARY"

// webhookBuild is how BuildWebhook builds cmd/webhook, as its build info
// records it. Its -ldflags are not recorded under -trimpath (they may hold
// paths); their effect, no symbol table (-s) and no DWARF (-w), is checked
// in the binary instead.
var webhookBuild = []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "0"}, {Key: "-trimpath", Value: "true"}}

const webhookPackage = "github.com/token-projector/token-projector/cmd/webhook"

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

// WebhookBinary returns the webhook binary to run: $WEBHOOK_BINARY when set (one
// build shared by every test package of a make test run, which saves a link
// per package), after checking in its build info that it was built as
// BuildWebhook builds; else one BuildWebhook builds into dir.
func WebhookBinary(root, dir string) (string, error) {
	bin := os.Getenv(WebhookBinaryEnv)
	if bin == "" {
		return BuildWebhook(root, dir)
	}
	return bin, checkWebhookBuild(bin)
}

// checkWebhookBuild fails unless bin is cmd/webhook built as BuildWebhook
// builds it.
func checkWebhookBuild(bin string) error {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("%s=%s: %w", WebhookBinaryEnv, bin, err)
	}
	if info.Path != webhookPackage {
		return fmt.Errorf("%s=%s is a build of %s, want %s", WebhookBinaryEnv, bin, info.Path, webhookPackage)
	}
	got := map[string]string{}
	for _, s := range info.Settings {
		got[s.Key] = s.Value
	}
	var wrong []string
	for _, want := range webhookBuild {
		if got[want.Key] != want.Value {
			wrong = append(wrong, fmt.Sprintf("%s=%q, want %q", want.Key, got[want.Key], want.Value))
		}
	}
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("%s=%s: %w", WebhookBinaryEnv, bin, err)
	}
	defer func() { _ = f.Close() }()
	for _, section := range []string{".symtab", ".debug_info"} {
		if f.Section(section) != nil {
			wrong = append(wrong, fmt.Sprintf("a %s section, want none (-ldflags=\"-s -w\")", section))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%s=%s was not built as BuildWebhook and the Dockerfile build it: %s", WebhookBinaryEnv, bin, strings.Join(wrong, ", "))
	}
	return nil
}
