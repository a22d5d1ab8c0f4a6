//go:build tools

// Package tools records the commands this module exists to build, so that
// 'go mod tidy' keeps their dependencies. hack/controlplane.sh builds
// kube-apiserver from it; hack/cluster.sh builds the other components of the
// test cluster from the same pinned k8s.io/kubernetes, so that they share
// its build cache.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
