// Command webhook is token-projector's admission webhook.
//
//	webhook [serve] [flags]             serve admission requests (the default)
//	webhook inject -f FILE|- [flags]    apply the same mutation to manifests offline
//	webhook --version                   print the version, commit and commit time
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/token-projector/token-projector/internal/version"
	"github.com/token-projector/token-projector/pkg/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return serve(args[1:])
		case "inject":
			return injectCmd(args[1:], os.Stdin, os.Stdout)
		case "version", "-version", "--version":
			fmt.Println(version.Get())
			return nil
		}
	}
	return serve(args)
}

func serve(args []string) error {
	opts := server.DefaultOptions()
	zapOpts := zap.Options{}
	fs := flag.NewFlagSet("webhook serve", flag.ContinueOnError)
	opts.BindFlags(fs)
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	ctx := ctrl.SetupSignalHandler()
	return server.Run(ctrl.LoggerInto(ctx, ctrl.Log.WithName("token-projector")), opts)
}
