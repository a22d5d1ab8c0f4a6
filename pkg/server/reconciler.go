package server

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	tpadmission "github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/pkg/reconcile"
)

// setupReconciler registers the reconciler that restores the identities of
// admitted pods and, with o.GCTTL, collects unused ones. It shares the
// handler's Ensurer, so that a restore and an admission for one account
// merge, and returns the Ensurer the handler must use: one that tells the
// reconciler an identity is in use before ensuring it.
func setupReconciler(mgr ctrl.Manager, o Options, ensurer *rbac.Ensurer) (tpadmission.Ensurer, error) {
	r := &reconcile.Reconciler{
		Cache: mgr.GetCache(), Live: mgr.GetAPIReader(), Writer: mgr.GetClient(), Ensurer: ensurer, TTL: o.GCTTL,
	}
	if err := r.SetupWithManager(context.Background(), mgr); err != nil {
		return nil, fmt.Errorf("setting up the reconciler: %w", err)
	}
	return &touchingEnsurer{Ensurer: ensurer, touch: r.Touch}, nil
}

// touchingEnsurer marks an identity used before ensuring it, so that it is
// not collected while the pod it is ensured for is on its way to the API
// server.
type touchingEnsurer struct {
	*rbac.Ensurer
	touch func(namespace, serviceAccount string)
}

func (t *touchingEnsurer) Ensure(ctx context.Context, namespace, serviceAccount string, dryRun bool) (rbac.Result, error) {
	if !dryRun {
		t.touch(namespace, serviceAccount)
	}
	return t.Ensurer.Ensure(ctx, namespace, serviceAccount, dryRun)
}
