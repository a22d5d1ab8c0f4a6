package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/token-projector/token-projector/test/bench/cachemem"
)

// cachememMain runs one cache-memory measurement in a process of its own,
// so that nothing else lives on its heap, and prints the result as JSON.
func cachememMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench cachemem", flag.ContinueOnError)
	var shape cachemem.Shape
	fs.IntVar(&shape.Namespaces, "namespaces", 10000, "Opted-in namespaces.")
	fs.IntVar(&shape.ServiceAccounts, "service-accounts", 10, "ServiceAccounts of the webhook per namespace.")
	fs.BoolVar(&shape.RBAC, "rbac", true, "Give each ServiceAccount its Role and RoleBinding.")
	fs.IntVar(&shape.Pods, "pods", 0, "Running pods per namespace.")
	fs.IntVar(&shape.InjectedEvery, "injected-every", 1, "Every n-th pod was injected by the webhook (1: all).")
	fs.IntVar(&shape.RoleBindings, "role-bindings", 0, "RoleBindings per namespace the webhook did not write, each naming a ServiceAccount.")
	fs.IntVar(&shape.ClusterRoleBindings, "cluster-role-bindings", 0, "ClusterRoleBindings, each naming a ServiceAccount.")
	heapProfile := fs.String("heap-profile", "", "File to write a heap profile of the synced caches to.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var hp *os.File
	if *heapProfile != "" {
		var err error
		if hp, err = os.Create(*heapProfile); err != nil {
			return err
		}
		defer hp.Close()
	}
	ctrl.SetLogger(logr.Discard()) // client-go's informers log through it
	var res cachemem.Result
	var err error
	if hp != nil {
		res, err = cachemem.Measure(ctx, shape, hp)
	} else {
		res, err = cachemem.Measure(ctx, shape, nil)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
