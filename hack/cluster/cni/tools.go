//go:build tools

// Package tools records the CNI plugins this module exists to build (pod
// networking of test/cluster's node), so that 'go mod tidy' keeps their
// dependencies. hack/cluster.sh builds them.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
)
