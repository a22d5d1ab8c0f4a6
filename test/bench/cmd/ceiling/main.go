// Command ceiling serves the benchmarks' ceiling (package ceiling) until it
// is signalled, with net/http/pprof on a separate address so that its
// profile can be set beside the webhook's.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/token-projector/token-projector/test/bench/ceiling"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:9443", "Address to serve HTTPS on.")
	certDir := flag.String("cert-dir", "", "Directory of tls.crt and tls.key.")
	pprofAddr := flag.String("pprof-addr", "", "Address of net/http/pprof; empty disables it.")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		srv := &http.Server{Addr: *pprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.ListenAndServe() }()
		defer func() { _ = srv.Close() }()
	}
	l, err := ceiling.Listen(ctx, *addr, *certDir)
	if err != nil {
		return err
	}
	return ceiling.Serve(ctx, l)
}
