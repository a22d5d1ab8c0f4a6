//go:build tools

// Package tools records the commands this module exists to build (the
// container runtime of test/cluster's node), so that 'go mod tidy' keeps
// their dependencies. hack/cluster.sh builds them.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
