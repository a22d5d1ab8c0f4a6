package server

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/rbac"
)

// informEnsurer hands the Ensurer every event of the informers it reads, so
// that an object it created counts as present only until the cache has
// shown it, or its deletion (see rbac.Ensurer.CacheEventHandler).
func informEnsurer(c cache.Informers, e *rbac.Ensurer) error {
	for kind, obj := range map[string]client.Object{
		"ServiceAccount": metadataOf("ServiceAccount"),
		"Role":           &rbacv1.Role{},
		"RoleBinding":    &rbacv1.RoleBinding{},
	} {
		informer, err := c.GetInformer(context.Background(), obj)
		if err != nil {
			return fmt.Errorf("getting the %s informer: %w", kind, err)
		}
		if _, err := informer.AddEventHandler(e.CacheEventHandler(kind)); err != nil {
			return fmt.Errorf("handing %s events to the Ensurer: %w", kind, err)
		}
	}
	return nil
}
