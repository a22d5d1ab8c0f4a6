package server

import (
	"context"

	"github.com/token-projector/token-projector/pkg/rbac"
)

// TEMPORARY until h-rbac merges.
type restoreShim struct{ *rbac.Ensurer }

func (s restoreShim) Restore(ctx context.Context, ns, sa string) (rbac.Result, error) {
	return s.Ensurer.Restore(ctx, ns, sa, false)
}
