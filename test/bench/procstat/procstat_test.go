package procstat

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestReadSelf(t *testing.T) {
	// Burn CPU until it shows in utime (a clock tick at least): on a
	// loaded machine 50 ms of wall time may not get the process one tick.
	var s Sample
	for deadline := time.Now().Add(10 * time.Second); ; {
		for burn := time.Now().Add(20 * time.Millisecond); time.Now().Before(burn); {
		}
		var err error
		if s, err = Read(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if s.CPU > 0 || time.Now().After(deadline) {
			break
		}
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

// TestWatchAnon: the anonymous memory sampled in a child process that
// holds a 64 MiB block for a moment, then frees it, peaks above the block
// although the child's memory at the end is below it; watching a process
// that is gone is an error.
func TestWatchAnon(t *testing.T) {
	if os.Getenv("PROCSTAT_HOLD") != "" {
		holdAndFree()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchAnon$")
	cmd.Env = append(os.Environ(), "PROCSTAT_HOLD=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	w := WatchAnon(cmd.Process.Pid, 2*time.Millisecond)
	lines := bufio.NewScanner(out)
	for _, want := range []string{"held", "freed"} {
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("child said %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
		if want == "held" {
			time.Sleep(20 * time.Millisecond) // samples while it holds the block
			_, _ = in.Write([]byte("free\n"))
		}
	}
	end, err := Read(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	peak, err := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	const block = 64 << 20
	if peak < block || end.AnonRSS >= block {
		t.Errorf("peak anonymous memory %d B, at the end %d B; want a peak above the %d B block and an end below it", peak, end.AnonRSS, block)
	}
	_ = in.Close()
	_ = cmd.Wait()
	if _, err := WatchAnon(cmd.Process.Pid, time.Millisecond).Stop(); err == nil {
		t.Error("watching a process that ended reported no error")
	}
}

// holdAndFree is the child of TestWatchAnon: it holds a touched 64 MiB
// block until told to free it, and returns it to the OS.
func holdAndFree() {
	block := make([]byte, 64<<20)
	for i := range block {
		block[i] = 1
	}
	fmt.Println("held")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	runtime.KeepAlive(block) // unreachable from here on
	debug.FreeOSMemory()
	fmt.Println("freed")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}
