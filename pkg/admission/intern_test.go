package admission

import (
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// TestIntern: intern is string(b) whatever the cache holds, the same
// string for the same short bytes, and safe to call from many goroutines
// (run under -race in make test).
func TestIntern(t *testing.T) {
	a, b := intern([]byte("kube-api-access-7x2lq")), intern([]byte("kube-api-access-7x2lq"))
	if a != "kube-api-access-7x2lq" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Errorf("the same bytes gave %q and %q, not one shared string", a, b)
	}
	long := strings.Repeat("x", maxInterned+1)
	if l1, l2 := intern([]byte(long)), intern([]byte(long)); l1 != long || unsafe.StringData(l1) == unsafe.StringData(l2) {
		t.Errorf("a string longer than %d was kept", maxInterned)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				want := strings.Repeat(string(rune('a'+g)), 1+i%40)
				buf := []byte(want)
				if got := intern(buf); got != want {
					t.Errorf("intern(%q) = %q", want, got)
					return
				}
				buf[0] = '!' // the bytes are the caller's: the string must not change
				if got := intern([]byte(want)); got != want {
					t.Errorf("after its bytes changed, intern(%q) = %q", want, got)
					return
				}
			}
		})
	}
	wg.Wait()
}
