package install

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/render"
)

// TestUpgradeKeepsTheRunningLease: an upgrade renders the Lease the
// release's running Deployment elects through, so that its old and new
// pods elect through one Lease and never lead at once. A release not named
// token-projector installed by a chart before the per-release Lease (no
// --leader-election-id: the webhook's default) keeps
// token-projector-reconciler; one running with another Lease keeps it; a
// fresh install, or a Deployment that elects no leader, gets the
// per-release <fullname>-reconciler. The chart looks the Deployment up as
// `helm upgrade` does (rendered here with --dry-run=server against the
// suite's kube-apiserver).
func TestUpgradeKeepsTheRunningLease(t *testing.T) {
	const upgradeNS = "lease-upgrade"
	ensureNamespace(t, upgradeNS)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	leaseOf := func(t *testing.T, release string) string {
		t.Helper()
		out, err := render.RunHelm(root, "template", release, render.ChartDir, "--namespace", upgradeNS, "--dry-run=server", "--kubeconfig", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := render.Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		var d appsv1.Deployment
		into(t, objs, "Deployment", release+"-token-projector", &d)
		return parseArgs(t, d.Spec.Template.Spec.Containers[0].Args).LeaderElectionID
	}
	// running creates the release's Deployment as this chart renders it,
	// its arguments changed by edit, as the previous install left it.
	running := func(t *testing.T, release string, edit func([]string) []string) {
		t.Helper()
		objs, err := render.ChartRelease(root, release, upgradeNS)
		if err != nil {
			t.Fatal(err)
		}
		var d appsv1.Deployment
		into(t, objs, "Deployment", release+"-token-projector", &d)
		c := &d.Spec.Template.Spec.Containers[0]
		c.Args = edit(c.Args)
		d.Namespace = upgradeNS
		if err := env.Admin.Create(ctx, &d); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Admin.Delete(ctx, &d) })
	}
	withoutID := func(args []string) []string {
		return slices.DeleteFunc(args, func(a string) bool { return strings.HasPrefix(a, "--leader-election-id=") })
	}
	for _, tc := range []struct {
		name, release string
		edit          func([]string) []string // nil: no Deployment runs
		want          string
	}{
		{"fresh install", "fresh", nil, "fresh-token-projector-reconciler"},
		{"from a chart before the per-release Lease", "early", withoutID, server.DefaultLeaderElectionID},
		{"from another Lease", "custom", func(args []string) []string {
			return append(withoutID(args), "--leader-election-id=custom-lease")
		}, "custom-lease"},
		{"from a chart before leader election", "unelected", func(args []string) []string {
			return slices.DeleteFunc(withoutID(args), func(a string) bool { return a == "--leader-elect" })
		}, "unelected-token-projector-reconciler"},
		{"from this chart", "current", func(args []string) []string { return args }, "current-token-projector-reconciler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.edit != nil {
				running(t, tc.release, tc.edit)
			}
			if got := leaseOf(t, tc.release); got != tc.want {
				t.Errorf("release %s: --leader-election-id=%q, want %q", tc.release, got, tc.want)
			}
		})
	}
}
