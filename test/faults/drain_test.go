package faults

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/token-projector/token-projector/test/testenv"
)

// TestDrainOnSIGTERM sends SIGTERM to the webhook binary while a client keeps
// creating annotated pods through kube-apiserver: /readyz fails from then on
// (its not-draining check), every pod created during the drain delay is
// still mutated (none refused, none admitted without its token), and the
// process then exits 0.
// On the old code SIGTERM stopped serving at once: pods were refused under
// failurePolicy Fail and /readyz was simply gone.
func TestDrainOnSIGTERM(t *testing.T) {
	const afterNotReady = 15 // pods created once /readyz failed
	dir := t.TempDir()
	bin, err := testenv.WebhookBinary(env.Root, dir)
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "webhook.log")
	// The delay only has to outlast afterNotReady pod creations (each a few
	// milliseconds); it is generous so that a loaded machine passes too.
	proc := startProcess(t, bin, webhookKubeconfig(t, dir), logFile, "--drain-delay=10s", "--shutdown-timeout=10s")
	waitAdmitting(t)
	ns := namespace(t)

	hc := &http.Client{Timeout: time.Second}
	// notReady: /readyz fails (controller-runtime answers 500), and it is
	// the drain check that fails.
	notReady := func() bool {
		resp, err := hc.Get(proc.readyz + "?verbose")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode != http.StatusOK && strings.Contains(string(body), "[-]not-draining")
	}
	// create admits one pod and says why it failed, if it did.
	create := func() string {
		p := pod(ns, "")
		if err := env.Admin.Create(context.Background(), p); err != nil {
			return err.Error()
		}
		if !testenv.MutatedOnce(p) {
			return "admitted without its token"
		}
		return ""
	}
	for range 5 {
		if why := create(); why != "" {
			t.Fatalf("before SIGTERM: %s", why)
		}
	}

	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Keep creating pods until /readyz fails, then afterNotReady more.
	sent, after := 0, 0
	deadline := time.Now().Add(time.Minute)
	for after < afterNotReady {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not fail within a minute of SIGTERM (%d pods created meanwhile; log: %s)", sent, logFile)
		}
		if after > 0 || notReady() {
			after++
		}
		sent++
		if why := create(); why != "" {
			t.Fatalf("pod %d after SIGTERM (%d after /readyz failed): %s (log: %s)", sent, after, why, logFile)
		}
	}
	if !notReady() {
		t.Errorf("/readyz does not fail during the drain")
	}

	select {
	case err := <-proc.exited:
		if err != nil {
			t.Errorf("the webhook exited with %v after SIGTERM, want 0 (log: %s)", err, logFile)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the webhook did not exit within a minute of its drain delay (log: %s)", logFile)
	}
}
