package cluster_test

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// summary is what the tier proved, printed last by TestMain.
var summary struct {
	ran            atomic.Bool
	podsRunning    atomic.Int64
	tokensVerified atomic.Int64
	reviewsChecked atomic.Int64
	// path is how kube-apiserver reached the webhook, once a test checked
	// it ("clusterip": the Service's cluster IP, through kube-proxy).
	path atomic.Value
	// tokenPolicy is "enforced" once a hand-written volume for a forbidden
	// audience was refused while an injected pod beside it ran.
	tokenPolicy atomic.Value
	// install is "oci" once the webhook ran the release helm installed
	// from the registry, its image pulled by digest by containerd.
	install  atomic.Value
	upgrade  phase
	eviction phase
}

// phase is one load scenario's outcome. A phase that did not run to its
// end (a t.Fatal on the way) reports no count: "unfinished", never a 0
// that would read as "no creation failed".
type phase struct {
	finished atomic.Bool
	failed   atomic.Int64
}

// finish records the failed creations of a phase that ran to its end.
func (p *phase) finish(failed int64) {
	p.failed.Store(failed)
	p.finished.Store(true)
}

func (p *phase) String() string {
	if !p.finished.Load() {
		return "unfinished"
	}
	return fmt.Sprint(p.failed.Load())
}

// ok reports whether the phase finished without a failed creation.
func (p *phase) ok() bool { return p.finished.Load() && p.failed.Load() == 0 }

// summaryLine is the tier's last line, and whether it reports success.
func summaryLine() (string, bool) {
	path, _ := summary.path.Load().(string)
	if path == "" {
		path = "unchecked"
	}
	tokenPolicy, _ := summary.tokenPolicy.Load().(string)
	if tokenPolicy == "" {
		tokenPolicy = "unchecked"
	}
	install, _ := summary.install.Load().(string)
	if install == "" {
		install = "unchecked"
	}
	fields := []string{
		"install=" + install,
		fmt.Sprintf("pods_running=%d", summary.podsRunning.Load()),
		fmt.Sprintf("tokens_verified=%d", summary.tokensVerified.Load()),
		fmt.Sprintf("reviews_checked=%d", summary.reviewsChecked.Load()),
		"path=" + path,
		"token_policy=" + tokenPolicy,
		"upgrade_failed_creations=" + summary.upgrade.String(),
		"eviction_failed_creations=" + summary.eviction.String(),
	}
	return "cluster: " + strings.Join(fields, " "), install == "oci" && summary.upgrade.ok() && summary.eviction.ok() && path == "clusterip" && tokenPolicy == "enforced"
}
