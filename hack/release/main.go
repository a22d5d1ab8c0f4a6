// Command release publishes a signed release of token-projector to an OCI
// registry (make release), and verifies a signature the way cosign does.
//
//	go run ./hack/release publish -version v0.1.0 -registry ghcr.io/me -key cosign.key -helm bin/helm
//	go run ./hack/release publish -version v0.1.0 -registry ghcr.io/me -keyless   (hosted CI: cosign sign)
//	go run ./hack/release verify -key cosign.pub ghcr.io/me/token-projector@sha256:...
//
// Credentials come from the docker config (~/.docker/config.json and its
// credential helpers); a signing key's password from COSIGN_PASSWORD.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/token-projector/token-projector/internal/image"
	"github.com/token-projector/token-projector/internal/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: release publish|verify [flags]")
	}
	switch args[0] {
	case "publish":
		return publish(ctx, args[1:])
	case "verify":
		return verify(ctx, args[1:])
	default:
		return fmt.Errorf("unknown subcommand %q: want publish or verify", args[0])
	}
}

func publish(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	c := release.Config{Root: ".", Log: os.Stdout}
	fs.StringVar(&c.Version, "version", "", "the release's tag, e.g. v0.1.0 (required)")
	fs.StringVar(&c.Registry, "registry", "", "host/path: the image goes to <registry>/token-projector, the chart to <registry>/charts/token-projector (required)")
	fs.StringVar(&c.Base, "base", image.LocalBase, `the image's base, pinned by digest (the Dockerfile's), or "local"`)
	fs.StringVar(&c.SourceURL, "source", "https://github.com/token-projector/token-projector", "the repository's address, for org.opencontainers.image.source")
	fs.StringVar(&c.Helm, "helm", "helm", "the helm binary that packages the chart")
	fs.StringVar(&c.Out, "o", "bin/release", "where the binaries, SBOMs and chart package are written")
	key := fs.String("key", "", "the signing key: cosign's (password in COSIGN_PASSWORD) or a PEM private key")
	keyless := fs.Bool("keyless", false, "sign with `cosign sign` (keyless in a hosted CI) instead of a key")
	cosign := fs.String("cosign", "cosign", "the cosign binary, with -keyless")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Version == "" || c.Registry == "" {
		return errors.New("publish: -version and -registry are required (make release VERSION=v0.1.0 REGISTRY=ghcr.io/me)")
	}
	switch {
	case *keyless && *key != "":
		return errors.New("publish: -key and -keyless exclude each other")
	case *keyless:
		c.Signer = release.CosignCLI{Path: *cosign, Stdout: os.Stderr}
	case *key != "":
		s, err := release.LoadKeySigner(*key, remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return err
		}
		c.Signer = s
	default:
		return errors.New("publish: a release is signed: give -key FILE (make release COSIGN_KEY=cosign.key) or -keyless")
	}
	res, err := release.Run(ctx, c)
	if err != nil {
		return err
	}
	fmt.Printf("image %s\nchart %s\n", res.Index, res.Chart)
	return nil
}

func verify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	key := fs.String("key", "", "the public key (cosign.pub)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || fs.NArg() != 1 {
		return errors.New("usage: release verify -key cosign.pub <repository@sha256:...>")
	}
	d, err := name.NewDigest(fs.Arg(0))
	if err != nil {
		return err
	}
	v, err := release.LoadVerifier(*key)
	if err != nil {
		return err
	}
	if err := release.Verify(ctx, d, v, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	fmt.Println("verified", d)
	return nil
}
