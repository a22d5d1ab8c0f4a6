package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/token-projector/token-projector/pkg/server"
)

// Webhook is a webhook running in-process against an Env.
type Webhook struct {
	Options server.Options
	cancel  context.CancelFunc
	done    chan error
}

// StartWebhook runs the webhook with o and waits until /readyz passes (certs
// loaded, caches synced) or the deadline passes.
func StartWebhook(ctx context.Context, o server.Options, deadline time.Duration) (*Webhook, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &Webhook{Options: o, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- server.Run(ctx, o) }()
	if err := WaitReady(ctx, "http://"+o.HealthProbeBindAddress+"/readyz", deadline, w.done); err != nil {
		_ = w.Stop() // the readiness error is the one worth reporting
		return nil, err
	}
	return w, nil
}

// Stop cancels the webhook and waits for it to return.
func (w *Webhook) Stop() error {
	w.cancel()
	select {
	case err := <-w.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("webhook did not stop within 30s")
	}
}

// WaitReady polls a readiness URL until it answers 200, the deadline passes,
// or exited reports that the process ended.
func WaitReady(ctx context.Context, url string, deadline time.Duration, exited <-chan error) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, deadline, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-exited:
			return false, fmt.Errorf("webhook exited before it was ready: %w", err)
		default:
		}
		resp, err := hc.Get(url)
		if err != nil {
			last = err
			return false, nil
		}
		resp.Body.Close()
		last = fmt.Errorf("%s answered %s", url, resp.Status)
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("webhook not ready: %w (last: %w)", err, last)
	}
	return nil
}
