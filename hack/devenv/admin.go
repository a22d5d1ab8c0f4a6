package main

import "sigs.k8s.io/controller-runtime/pkg/envtest"

// envtestAdmin is a cluster-admin identity for the developer at the keyboard.
func envtestAdmin() envtest.User {
	return envtest.User{Name: "developer", Groups: []string{"system:masters"}}
}
