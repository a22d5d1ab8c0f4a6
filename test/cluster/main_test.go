package cluster_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

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
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
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
