package cluster_test

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// summary is what the tier proved, printed last by TestMain.
var summary struct {
	ran                     atomic.Bool
	podsRunning             atomic.Int64
	tokensVerified          atomic.Int64
	upgradeFailedCreations  atomic.Int64
	evictionFailedCreations atomic.Int64
}

func TestMain(m *testing.M) {
	// The in-process cert-manager logs through controller-runtime: only
	// with -v, so that the summary line stays the last of a quiet run.
	flag.Parse()
	if testing.Verbose() {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	code := m.Run()
	if summary.ran.Load() {
		line := fmt.Sprintf("cluster: pods_running=%d tokens_verified=%d upgrade_failed_creations=%d eviction_failed_creations=%d",
			summary.podsRunning.Load(), summary.tokensVerified.Load(),
			summary.upgradeFailedCreations.Load(), summary.evictionFailedCreations.Load())
		if summary.upgradeFailedCreations.Load() != 0 || summary.evictionFailedCreations.Load() != 0 {
			code = 1
		}
		fmt.Println(line)
	}
	os.Exit(code)
}
