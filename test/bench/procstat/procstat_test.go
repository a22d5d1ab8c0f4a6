package procstat

import (
	"os"
	"testing"
	"time"
)

func TestReadSelf(t *testing.T) {
	// Burn some CPU so that it shows in utime.
	deadline := time.Now().Add(50 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU <= 0 || s.RSS <= 0 || s.PeakRSS < s.RSS || s.AnonRSS <= 0 || s.AnonRSS > s.RSS {
		t.Errorf("sample %+v: want CPU > 0, RSS > 0, peak >= RSS >= anonymous RSS > 0", s)
	}
	if clockTicks <= 0 {
		t.Errorf("clock ticks %d", clockTicks)
	}
	if _, err := Read(-1); err == nil {
		t.Error("reading a process that does not exist succeeded")
	}
}

func TestResetPeak(t *testing.T) {
	if err := ResetPeak(os.Getpid()); err != nil {
		t.Skipf("clear_refs not writable here: %v", err)
	}
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Right after a reset the peak is about the current size.
	if s.PeakRSS < s.RSS || s.PeakRSS > 2*s.RSS {
		t.Errorf("after reset: peak %d, RSS %d", s.PeakRSS, s.RSS)
	}
}
