package rbac

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// objectKey names one object of one kind.
type objectKey struct{ kind, namespace, name string }

// uncached are the objects the cache does not show that the Ensurer knows
// exist, each held for a while:
//
//   - created here (createdHere), for at most CacheWait, so that the
//     callers right after an ensure create nothing twice;
//   - of our name, not labelled as ours but identical, accepted after a
//     create met it (remembered), for ForeignMemory: the cache, which holds
//     only our own, never shows them.
//
// An object is dropped as soon as the informer delivers any event of it
// (delivered; same kind, namespace, name and UID): the cache then shows
// it, or has seen it go, and is the truth from then on. A deletion is
// thereby seen as one, where holding the object until its time is up
// answered "present" for an object the API server no longer had.
type uncached struct {
	mu      sync.Mutex
	objects map[objectKey]*uncachedObject
	// size is len(objects), read without the lock so that the informers'
	// events cost nothing while none is held, the usual case.
	size atomic.Int32
	// purgeAt is the size past which expired objects are purged.
	purgeAt int
}

type uncachedObject struct {
	// held is set while the object of UID uid is held, as why, until
	// expires.
	held    bool
	uid     types.UID
	why     source
	expires time.Time
	// creates counts the creates of this name under way, and seen the
	// UIDs of the events the informer delivered meanwhile ("" for a
	// tombstone without its object): an event may overtake the create's
	// answer, and must still drop what it created.
	creates int
	seen    []types.UID
}

// begin is called before a create of k.
func (u *uncached) begin(k objectKey, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.entry(k, now).creates++
}

// end is called after a create of k that begin announced, with the object
// created (nil if none): it is held as created here until ttl has passed,
// unless the informer has delivered an event of it already.
func (u *uncached) end(k objectKey, created client.Object, ttl time.Duration, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	o := u.objects[k]
	o.creates--
	if created != nil && ttl > 0 && !o.delivered(created.GetUID()) {
		o.held, o.uid, o.why, o.expires = true, created.GetUID(), createdHere, now.Add(ttl)
	}
	if o.creates == 0 {
		o.seen = nil
	}
	u.dropIfIdle(k, o)
}

// remember holds obj, an object of our name that is not ours but is
// accepted, for ttl.
func (u *uncached) remember(k objectKey, obj client.Object, ttl time.Duration, now time.Time) {
	if ttl <= 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	o := u.entry(k, now)
	o.held, o.uid, o.why, o.expires = true, obj.GetUID(), remembered, now.Add(ttl)
}

// holds says why k is held, or missing if it is not (or no longer).
func (u *uncached) holds(k objectKey, now time.Time) source {
	if u.size.Load() == 0 {
		return missing
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	o := u.objects[k]
	switch {
	case o == nil || !o.held:
		return missing
	case !now.Before(o.expires):
		o.held = false
		u.dropIfIdle(k, o)
		return missing
	}
	return o.why
}

// delivered is told of every event the informer of k's kind delivers, of
// the object uid ("" if unknown): once the cache has shown an object, or
// its deletion, it is not held any more.
func (u *uncached) delivered(k objectKey, uid types.UID) {
	if u.size.Load() == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	o := u.objects[k]
	if o == nil {
		return
	}
	if o.creates > 0 {
		o.seen = append(o.seen, uid)
	}
	if o.held && (uid == "" || uid == o.uid) {
		o.held = false
	}
	u.dropIfIdle(k, o)
}

// delivered reports whether the informer delivered an event of uid while
// a create was under way.
func (o *uncachedObject) delivered(uid types.UID) bool {
	for _, s := range o.seen {
		if s == "" || s == uid {
			return true
		}
	}
	return false
}

// entry returns k's entry, made if there is none; the lock is held.
func (u *uncached) entry(k objectKey, now time.Time) *uncachedObject {
	if o := u.objects[k]; o != nil {
		return o
	}
	if u.objects == nil {
		u.objects = map[objectKey]*uncachedObject{}
	}
	if len(u.objects) >= u.purgeAt {
		u.purge(now)
	}
	o := &uncachedObject{}
	u.objects[k] = o
	u.size.Store(int32(len(u.objects)))
	return o
}

// purge drops the objects whose time is up that nobody asked for since,
// once the map has doubled since the last purge: amortized, a constant
// cost per object held. The lock is held.
func (u *uncached) purge(now time.Time) {
	for k, o := range u.objects {
		if o.held && !now.Before(o.expires) {
			o.held = false
		}
		u.dropIfIdle(k, o)
	}
	u.purgeAt = max(2*len(u.objects), 64)
}

// dropIfIdle deletes k's entry if it holds nothing and no create of k is
// under way. The lock is held.
func (u *uncached) dropIfIdle(k objectKey, o *uncachedObject) {
	if !o.held && o.creates == 0 {
		delete(u.objects, k)
		u.size.Store(int32(len(u.objects)))
	}
}
