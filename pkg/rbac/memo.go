package rbac

import (
	"sync"
	"sync/atomic"
)

// warmMemo holds the warm path's answers per account, each drawn from the
// informer cache alone (never from uncached, whose entries expire), until
// the informers deliver any event of an object in the account's
// namespace: the three cache reads it saves, and their comparisons, were
// half the Ensurer's CPU on the warm path (make bench profile).
//
// An informer delivers an event only after its cache holds the change, so
// an answer can outlive what it was drawn from only by the time between
// the two: the cache's own lag, a little longer. An answer drawn before an
// event and stored after it goes to the namespace's memo the event
// dropped, which no one reads again.
//
// It is used only once the Ensurer's CacheEventHandler has been asked for
// each of the three kinds: an Ensurer whose events no informer delivers
// reads its cache every time.
type warmMemo struct {
	// kinds are the kinds CacheEventHandler was asked for, as bits.
	kinds atomic.Uint32
	// namespaces maps a namespace to its *sync.Map of account names to
	// Results.
	namespaces sync.Map
}

const allKinds = 1<<3 - 1

func kindBit(kind string) uint32 {
	switch kind {
	case kindServiceAccount:
		return 1
	case kindRole:
		return 2
	case kindRoleBinding:
		return 4
	}
	return 0
}

// informed records that the events of kind will be delivered.
func (m *warmMemo) informed(kind string) { m.kinds.Or(kindBit(kind)) }

// accounts is the memo of namespace, nil when it is not in use.
func (m *warmMemo) accounts(namespace string) *sync.Map {
	if m.kinds.Load() != allKinds {
		return nil
	}
	if a, ok := m.namespaces.Load(namespace); ok {
		return a.(*sync.Map)
	}
	a, _ := m.namespaces.LoadOrStore(namespace, &sync.Map{})
	return a.(*sync.Map)
}

// changed drops the answers of namespace: an object there changed.
func (m *warmMemo) changed(namespace string) { m.namespaces.Delete(namespace) }

// changedAll drops every answer: an object changed, where is unknown.
func (m *warmMemo) changedAll() { m.namespaces.Clear() }
