package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/token-projector/token-projector/pkg/inject"
	"github.com/token-projector/token-projector/pkg/server"
)

// injectCmd is `webhook inject -f FILE|-`: the webhook's mutation applied to
// manifests offline, written to stdout.
func injectCmd(args []string, stdin io.Reader, stdout io.Writer) error {
	// The same expiration and audience flags as serve, so that offline
	// output matches what the cluster's webhook would admit.
	serveOpts := server.DefaultOptions()
	opts := inject.Options{}
	var file string
	fs := flag.NewFlagSet("webhook inject", flag.ContinueOnError)
	fs.StringVar(&file, "f", "", "Manifest file to inject into, or - for standard input.")
	fs.BoolVar(&opts.EmitRBAC, "emit-rbac", false, "Also write the ServiceAccount, Role and RoleBinding of every account the manifests use.")
	fs.StringVar(&opts.Namespace, "namespace", "", "Namespace of objects that name none (as kubectl apply -n).")
	serveOpts.BindPolicyFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if file == "" {
		return fmt.Errorf("inject: -f FILE or -f - is required")
	}
	opts.Config = serveOpts.MutateConfig()
	if err := opts.Config.Validate(); err != nil {
		return err
	}
	in, name := stdin, "<stdin>"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, file
	}
	return inject.Run(in, name, stdout, opts)
}
