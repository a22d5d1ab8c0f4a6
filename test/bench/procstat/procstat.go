// Package procstat reads a process's CPU time and memory from /proc, so that
// the webhook and the ceiling are measured alike, from outside, as the
// kernel accounts them.
package procstat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sample is one reading of a process.
type Sample struct {
	// CPU is user plus system time since the process started.
	CPU time.Duration
	// RSS is the resident set size now, and PeakRSS its high-water mark
	// (since the start, or since the last ResetPeak), in bytes.
	RSS, PeakRSS int64
	// AnonRSS is the part of RSS that is the process's own memory (heap,
	// stacks); the rest is mostly the binary's pages, shared and
	// reclaimable.
	AnonRSS int64
}

// Read samples process pid.
func Read(pid int) (Sample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Sample{}, err
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return Sample{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 13 {
		return Sample{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	// utime and stime are fields 14 and 15 of the line, 12 and 13 after ")".
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return Sample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	s := Sample{CPU: time.Duration(ticks) * time.Second / time.Duration(clockTicks)}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Sample{}, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch key {
		case "VmRSS":
			s.RSS, err = kiB(value)
		case "VmHWM":
			s.PeakRSS, err = kiB(value)
		case "RssAnon":
			s.AnonRSS, err = kiB(value)
		}
		if err != nil {
			return Sample{}, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
		}
	}
	return s, nil
}

// ResetPeak restarts the high-water mark of the resident set at its current
// size (Linux's clear_refs "5"), so that a phase's peak is its own.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func kiB(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
	return n * 1024, err
}

// clockTicks is the unit of utime and stime: the kernel's USER_HZ, which it
// passes every process in its auxiliary vector (AT_CLKTCK).
var clockTicks = readClockTicks()

func readClockTicks() int64 {
	const atClkTck = 17
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err == nil {
		for i := 0; i+16 <= len(auxv); i += 16 {
			if binary.NativeEndian.Uint64(auxv[i:]) == atClkTck {
				if v := int64(binary.NativeEndian.Uint64(auxv[i+8:])); v > 0 {
					return v
				}
			}
		}
	}
	return 100 // USER_HZ on every Linux architecture Go supports
}

// AnonPeak samples a process's anonymous resident memory (RssAnon of
// /proc/<pid>/status) until Stop, and keeps its greatest value: the
// process's own memory (heap, stacks) at its peak, which VmHWM cannot give
// since it counts the binary's pages too, and which a memory limit
// protects.
type AnonPeak struct {
	stop chan struct{}
	done chan struct{}
	peak int64
	err  error
}

// WatchAnon starts sampling pid every interval.
func WatchAnon(pid int, every time.Duration) *AnonPeak {
	w := &AnonPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			w.sample(pid)
			select {
			case <-w.stop:
				w.sample(pid)
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *AnonPeak) sample(pid int) {
	s, err := Read(pid)
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return
	}
	w.peak = max(w.peak, s.AnonRSS)
}

// Stop ends the sampling and returns the peak in bytes; an error if any
// sample failed (the process ended, say).
func (w *AnonPeak) Stop() (int64, error) {
	close(w.stop)
	<-w.done
	return w.peak, w.err
}
