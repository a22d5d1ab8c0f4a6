// Command image builds and pushes the webhook's container image without a
// Docker daemon (make image, make image-push).
//
//	go run ./hack/image build -binary bin/webhook -base <ref|local> -tag <ref> -o bin/image/token-projector.tar
//	go run ./hack/image push -archive bin/image/token-projector.tar -to <repository[:tag]>
//
// build writes a docker-archive tarball and prints the image's digest: the
// same binary on the same base always gives the same digest.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/token-projector/token-projector/internal/image"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: image build|push [flags]")
	}
	switch args[0] {
	case "build":
		return build(args[1:])
	case "push":
		return push(args[1:])
	default:
		return fmt.Errorf("unknown subcommand %q: want build or push", args[0])
	}
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	binary := fs.String("binary", "bin/webhook", "the webhook binary, built as the Dockerfile builds it (make build)")
	base := fs.String("base", image.LocalBase, `base image pinned by digest, or "local" for an equivalent static non-root base assembled without a registry`)
	tag := fs.String("tag", "ghcr.io/token-projector/token-projector:dev", "the image's name in the archive")
	out := fs.String("o", "bin/image/token-projector.tar", "the docker-archive tarball to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	img, err := image.BuildFile(*base, image.Webhook, *binary)
	if err != nil {
		return err
	}
	if err := image.WriteArchive(img, *tag, *out); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", *out, *tag, d)
	return nil
}

func push(args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	archive := fs.String("archive", "bin/image/token-projector.tar", "a tarball written by build")
	to := fs.String("to", "", "the repository (and tag) to push to, e.g. ghcr.io/me/token-projector:v1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return fmt.Errorf("push: -to is required (make image-push IMG=<repository[:tag]>)")
	}
	img, err := image.ReadArchive(*archive)
	if err != nil {
		return err
	}
	ref, err := image.Push(img, *to)
	if err != nil {
		return err
	}
	fmt.Println(ref)
	return nil
}
