package cluster_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

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
		line, ok := summaryLine()
		if !ok {
			code = 1
		}
		fmt.Println(line)
	}
	os.Exit(code)
}
