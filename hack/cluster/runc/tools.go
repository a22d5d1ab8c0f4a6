//go:build tools

// Package tools records the command this module exists to build (the OCI
// runtime containerd's shim calls in test/cluster), so that 'go mod tidy'
// keeps its dependencies. hack/cluster.sh builds it.
package tools

import _ "github.com/opencontainers/runc"
