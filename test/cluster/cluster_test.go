package cluster_test

import (
	"testing"
	"time"

	"github.com/token-projector/token-projector/test/testenv"
)

// TestCluster installs the chart with helm onto a real single-node
// cluster (test/cluster) and runs the scenarios an admin meets, in order:
// they share the one installation.
func TestCluster(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	e := startCluster(t, root)
	summary.ran.Store(true)
	e.installCertManager(t)
	e.install(t)
	t.Logf("cluster: chart installed, both webhook replicas ready behind the Service, %v after start", time.Since(began).Round(100*time.Millisecond))
	for _, s := range []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"tokens that work", testTokens},
		{"a verifier reviews tokens", testVerifier},
		{"token file permissions", testTokenFilePermissions},
		{"namespace policy at the token API", testTokenPolicy},
		{"webhook reached through its cluster IP", testClusterIPPath},
		{"upgrade under load", testUpgrade},
		{"eviction under load", testEviction},
		{"outage", testOutage},
		{"uninstall", testUninstall},
	} {
		t.Run(s.name, func(t *testing.T) { s.run(t, e) })
	}
}
