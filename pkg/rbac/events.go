package rbac

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// CacheEventHandler is the handler to add to the informer behind Cache of
// kind ("ServiceAccount", "Role" or "RoleBinding"): every event it
// delivers (add, update, delete, a tombstone included) of an object this
// Ensurer holds as present while the cache did not show it (see
// CacheWait, ForeignMemory) ends that: the cache, which has then shown the
// object or its deletion, is the truth from then on. Without it, an object
// created here counts as present for CacheWait even if deleted meanwhile.
func (e *Ensurer) CacheEventHandler(kind string) toolscache.ResourceEventHandler {
	return cacheEvents{kind: kind, uncached: &e.uncached}
}

type cacheEvents struct {
	kind     string
	uncached *uncached
}

func (h cacheEvents) OnAdd(obj any, _ bool) { h.deliver(obj) }
func (h cacheEvents) OnUpdate(_, obj any)   { h.deliver(obj) }
func (h cacheEvents) OnDelete(obj any)      { h.deliver(obj) }

func (h cacheEvents) deliver(obj any) {
	if tombstone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		if _, isObject := tombstone.Obj.(metav1.Object); !isObject {
			// Its object unknown: whatever of its name is held goes.
			if namespace, name, err := toolscache.SplitMetaNamespaceKey(tombstone.Key); err == nil {
				h.uncached.delivered(objectKey{h.kind, namespace, name}, "")
			}
			return
		}
		obj = tombstone.Obj
	}
	if o, ok := obj.(metav1.Object); ok {
		h.uncached.delivered(objectKey{h.kind, o.GetNamespace(), o.GetName()}, o.GetUID())
	}
}
