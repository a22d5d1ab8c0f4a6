// Command bench is `make bench`: it starts a test control plane, runs the
// real webhook binary against it and a bare net/http "ceiling" server with
// the same certificate and TLS settings, drives both over HTTPS with
// keep-alive (HTTP/2 and HTTP/1.1) with realistic AdmissionReviews, and
// reports throughput, latency, CPU and memory of the webhook as absolute
// numbers and as ratios to the ceiling measured in the same, interleaved run.
// It also measures the cold and burst paths (API writes per admission) and
// the memory of the informer caches at scale. docs/performance.md explains
// the method and the numbers.
//
//	bench [flags]              the whole benchmark (make bench)
//	bench cachemem [flags]     one cache-memory measurement (run by bench itself)
//
// The ceiling is a binary of its own (test/bench/cmd/ceiling), so that its
// memory is that of a bare server, not of this one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	var err error
	args := os.Args[1:]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case len(args) > 0 && args[0] == "cachemem":
		err = cachememMain(ctx, args[1:])
	default:
		err = benchMain(ctx, args)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config bounds every part of the run, so that the whole of make bench
// stays within about ten minutes on a 2-core machine.
type config struct {
	webhookBin string
	ceilingBin string
	outDir     string

	rounds int
	slice  time.Duration
	warmup time.Duration

	coldRequests int
	bursts       int

	profile time.Duration

	scaleNamespaces      int
	scaleServiceAccounts int

	// webhookEnv is added to the webhook's environment (GOGC, GOMEMLIMIT).
	webhookEnv []string
}

func benchMain(ctx context.Context, args []string) error {
	c := config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.webhookBin, "webhook", "", "The webhook binary to measure; empty builds cmd/webhook as the Dockerfile does.")
	fs.StringVar(&c.ceilingBin, "ceiling", "", "The ceiling binary; empty builds test/bench/cmd/ceiling with the same flags.")
	fs.StringVar(&c.outDir, "out", "bin/bench-out", "Directory for the run's by-products: profiles, the webhook's log.")
	fs.IntVar(&c.rounds, "rounds", 5, "Interleaved rounds per protocol and concurrency: each measures the ceiling and the webhook; the summary judges the median of the rounds' ratios.")
	fs.DurationVar(&c.slice, "slice", 3*time.Second, "Measured time of each server in each round.")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "Unmeasured load before each measured slice.")
	fs.IntVar(&c.coldRequests, "cold-requests", 150, "Admissions of the cold path per concurrency, each naming a new ServiceAccount.")
	fs.IntVar(&c.bursts, "bursts", 3, "Bursts per protocol of 64 simultaneous admissions naming one new ServiceAccount.")
	fs.DurationVar(&c.profile, "profile", 8*time.Second, "Length of the CPU profiles (0 skips them).")
	fs.IntVar(&c.scaleNamespaces, "scale-namespaces", 10000, "Namespaces of the cache-memory measurement (0 skips it).")
	fs.IntVar(&c.scaleServiceAccounts, "scale-service-accounts", 10, "ServiceAccounts, each with its Role and RoleBinding, per namespace of the cache-memory measurement.")
	fs.Func("webhook-env", "KEY=VALUE added to the webhook's environment, to measure Go runtime settings (GOGC=50, GOMEMLIMIT=24MiB); repeatable.", func(s string) error {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", s)
		}
		c.webhookEnv = append(c.webhookEnv, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.rounds < 1 || c.slice <= 0 || c.coldRequests < 1 || c.bursts < 0 {
		return fmt.Errorf("rounds, slice and cold-requests must be positive")
	}
	var err error
	if c.outDir, err = filepath.Abs(c.outDir); err != nil {
		return err
	}
	if err := os.MkdirAll(c.outDir, 0o755); err != nil {
		return err
	}
	_, err = run(ctx, c)
	return err
}
