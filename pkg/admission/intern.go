package admission

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
)

// interned are strings the one pass has read, handed out again when the
// same bytes come back: the pods of one template repeat their names,
// labels, mount names and paths, and the reviews their kinds and groups,
// and a string made per value was a fifth of an admission's allocations.
// A slot holds the last string hashed to it; collisions only cost the
// allocation the cache saves.
var interned [1 << internBits]atomic.Pointer[string]

const internBits = 9

// maxInterned bounds the strings kept: longer ones (the status annotation,
// say) rarely repeat.
const maxInterned = 64

// intern is string(b), shared with earlier reads of the same bytes.
func intern(b []byte) string {
	if len(b) == 0 || len(b) > maxInterned {
		return string(b)
	}
	// Hashed in constant time, as encoding/json/v2's own cache: the length
	// and the first and last eight bytes (a loop over every byte was most
	// of the cost of a lookup).
	h := uint64(len(b))
	if len(b) >= 8 {
		h ^= binary.LittleEndian.Uint64(b) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[len(b)-8:]), 29)
	} else {
		for _, c := range b {
			h = h<<8 | uint64(c)
		}
	}
	slot := &interned[(h*0x9e3779b97f4a7c15)>>(64-internBits)]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
