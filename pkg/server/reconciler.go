package server

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/pkg/reconcile"
)

// setupReconciler registers the reconciler that restores the identities of
// injected pods and, with o.GCTTL, collects unused ones. It shares the
// handler's Ensurer, so that a restore and an admission for one account
// merge. Admissions do not report to it: what it knows of use comes from
// what every replica sees (pods, workloads, the managed objects), so that
// the replicas that are not leading keep no state for it.
func setupReconciler(mgr ctrl.Manager, o Options, ensurer *rbac.Ensurer) error {
	r := &reconcile.Reconciler{
		Cache: mgr.GetCache(), Live: mgr.GetAPIReader(), Writer: mgr.GetClient(), Ensurer: ensurer,
		TTL: o.GCTTL, CollectGrace: o.GCGrace,
	}
	if err := r.SetupWithManager(context.Background(), mgr); err != nil {
		return fmt.Errorf("setting up the reconciler: %w", err)
	}
	return nil
}
