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
//
// Every event also drops the warm path's answers for the object's
// namespace (warmMemo), which the Ensurer keeps only once it has been
// asked for the handlers of all three kinds: the caller must add each to
// its informer.
func (e *Ensurer) CacheEventHandler(kind string) toolscache.ResourceEventHandler {
	e.memo.informed(kind)
	return cacheEvents{kind: kind, uncached: &e.uncached, memo: &e.memo}
}

type cacheEvents struct {
	kind     string
	uncached *uncached
	memo     *warmMemo
}

func (h cacheEvents) OnAdd(obj any, _ bool) { h.deliver(obj) }
func (h cacheEvents) OnUpdate(_, obj any)   { h.deliver(obj) }
func (h cacheEvents) OnDelete(obj any)      { h.deliver(obj) }

func (h cacheEvents) deliver(obj any) {
	if tombstone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		if _, isObject := tombstone.Obj.(metav1.Object); !isObject {
			// Its object unknown: whatever of its name is held goes.
			namespace, name, err := toolscache.SplitMetaNamespaceKey(tombstone.Key)
			if err != nil {
				h.memo.changedAll()
				return
			}
			h.memo.changed(namespace)
			h.uncached.delivered(objectKey{h.kind, namespace, name}, "")
			return
		}
		obj = tombstone.Obj
	}
	if o, ok := obj.(metav1.Object); ok {
		h.memo.changed(o.GetNamespace())
		h.uncached.delivered(objectKey{h.kind, o.GetNamespace(), o.GetName()}, o.GetUID())
	}
}
