package admission

import "sync/atomic"

// interned are strings the one pass has read, handed out again when the
// same bytes come back: the pods of one template repeat their names,
// labels, mount names and paths, and the reviews their kinds and groups,
// and a string made per value was a fifth of an admission's allocations.
// A slot holds the last string hashed to it; collisions only cost the
// allocation the cache saves.
var interned [512]atomic.Pointer[string]

// maxInterned bounds the strings kept: longer ones (the status annotation,
// say) rarely repeat.
const maxInterned = 64

// intern is string(b), shared with earlier reads of the same bytes.
func intern(b []byte) string {
	if len(b) == 0 || len(b) > maxInterned {
		return string(b)
	}
	h := uint32(2166136261) // FNV-1a
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &interned[h%uint32(len(interned))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
