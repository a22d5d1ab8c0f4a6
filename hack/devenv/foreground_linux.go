package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeForeground makes devenv's own process group the foreground group of
// the terminal on stdin, and returns what gives the terminal back to the
// group that had it.
//
// Why: `make run` execs devenv as make's child, in make's process group. A
// Ctrl-C in the terminal sends SIGINT to the whole foreground group, make
// included, and GNU make, once its child has ended, re-raises SIGINT on
// itself: make would die of the signal (status 130) even though devenv
// stopped everything and exited 0. As a job-control shell does for a job,
// devenv moves into a group of its own (which the kube-apiserver and etcd it
// starts inherit) and gives it the terminal, so Ctrl-C reaches only devenv and
// its control plane; make sees its child exit 0 and exits 0.
//
// It changes nothing unless stdin is the controlling terminal and devenv is in
// its foreground group (not in CI, tests, pipes or a background job), or when
// devenv already leads its group (run directly by a job-control shell).
func takeForeground() (restore func()) {
	const tty = 0 // stdin
	noop := func() {}
	fg, err := unix.IoctlGetInt(tty, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() || fg == os.Getpid() {
		return noop
	}
	if err := unix.Setpgid(0, 0); err != nil {
		return noop
	}
	if err := setForeground(tty, os.Getpid()); err != nil {
		// The terminal stays with make's group: rejoin it, so that Ctrl-C
		// still reaches devenv.
		_ = unix.Setpgid(0, fg)
		return noop
	}
	return func() { _ = setForeground(tty, fg) }
}

// setForeground is tcsetpgrp. A process outside the foreground group that
// calls it is sent SIGTTOU (which would stop it), so the signal is ignored
// around the call, then reset so that the children devenv starts later do not
// inherit it ignored.
func setForeground(tty, pgrp int) error {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	return unix.IoctlSetPointerInt(tty, unix.TIOCSPGRP, pgrp)
}
