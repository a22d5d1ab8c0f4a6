package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/token-projector/token-projector/pkg/server"
)

// Suite is the TestMain every test package shares: controller-runtime's
// logger, one control plane for the package and, if asked, the webhook
// in-process; the package's own steps hook in between. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Suite{...}.Main(m)) }
type Suite struct {
	// Name prefixes the setup errors Main prints.
	Name string
	// LogLevel is controller-runtime's log level (zap; the zero value is
	// info).
	LogLevel zapcore.Level
	// Options are Start's.
	Options Options
	// Prepare runs before the control plane starts and may change its
	// Options (files to create first, flags that name them).
	Prepare func(*Options) error
	// Setup runs once the control plane is up and *Env is set, before the
	// webhook starts (bindings, certificates).
	Setup func(context.Context, *Env) error
	// Webhook, if set, starts the webhook in-process with the environment's
	// ServerOptions as it changes them, and waits until it is ready.
	Webhook func(*server.Options)
	// Teardown runs after the tests (or a failed setup), before the control
	// plane stops.
	Teardown func()
	// Env and Hook, if set, receive the control plane and the webhook.
	Env  **Env
	Hook **Webhook
}

// Main runs m in s and returns the exit code for os.Exit: m's, or 1 if the
// setup failed (the error printed on stderr).
func (s Suite) Main(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(s.LogLevel)))
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		return 1
	}
	teardown := func() {
		if s.Teardown != nil {
			s.Teardown()
		}
	}
	opts := s.Options
	if s.Prepare != nil {
		if err := s.Prepare(&opts); err != nil {
			teardown()
			return fail(err)
		}
	}
	env, err := Start(opts)
	if err != nil {
		teardown()
		return fail(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: stopping kube-apiserver: %v\n", s.Name, err)
		}
	}()
	defer teardown() // after the webhook stops, before the control plane does
	if s.Env != nil {
		*s.Env = env
	}
	ctx := context.Background()
	if s.Setup != nil {
		if err := s.Setup(ctx, env); err != nil {
			return fail(err)
		}
	}
	if s.Webhook != nil {
		o, err := env.ServerOptions()
		if err != nil {
			return fail(err)
		}
		s.Webhook(&o)
		hook, err := StartWebhook(ctx, o, time.Minute)
		if err != nil {
			return fail(err)
		}
		if s.Hook != nil {
			*s.Hook = hook
		}
		defer func() {
			// A test may have replaced the webhook (test/integration).
			if s.Hook != nil {
				hook = *s.Hook
			}
			if hook == nil {
				return
			}
			if err := hook.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "%s: stopping the webhook: %v\n", s.Name, err)
			}
		}()
	}
	return m.Run()
}
