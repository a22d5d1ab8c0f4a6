package rbac

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// remember holds obj, a Role or RoleBinding of our name that is not
// labelled as ours but grants exactly what ours would, as present for
// ForeignMemory: the cache, which holds only our own, never shows it, and
// without this every admission for its account would meet it again with a
// create and a live read.
func (e *Ensurer) remember(ctx context.Context, w wanted, obj client.Object) {
	ttl := e.ForeignMemory
	switch {
	case ttl == 0:
		ttl = DefaultForeignMemory
	case ttl < 0:
		return
	}
	e.uncached.remember(objectKey{w.kind, w.namespace, w.name}, obj, ttl, e.clock())
	logf.FromContext(ctx).V(1).Info("Remembered object not managed by token-projector that grants what it would",
		"kind", w.kind, "namespace", obj.GetNamespace(), "name", obj.GetName(), "uid", obj.GetUID(),
		"resourceVersion", obj.GetResourceVersion(), "for", ttl.Round(time.Second).String())
}
