package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/token-projector/token-projector/test/testenv"
)

// TestMakeRunExitsZeroOnCtrlC runs `make run` as a person does: from a shell
// whose controlling terminal is a pseudo-terminal, make in the shell's
// foreground process group. Once devenv says it is ready, it types Ctrl-C on
// the terminal, which the line discipline turns into SIGINT for the
// terminal's foreground group. It checks that make exits 0 (GNU make re-raises
// a SIGINT it received on itself and dies of it, 130), that the kube-apiserver
// and etcd are gone and the kubeconfig removed, and that the shell has the
// terminal's foreground back.
func TestMakeRunExitsZeroOnCtrlC(t *testing.T) {
	root, assets := repoAndAssets(t)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	terminal, tty := openPty(t)
	defer terminal.Close()

	// The shell survives a Ctrl-C that reaches it, as an interactive shell
	// does (make still gets SIGINT's default action: exec resets a trapped
	// signal), and reports make's status, then the terminal's foreground
	// group and its own (fields 8 and 5 of /proc/<pid>/stat).
	const script = `trap : INT
make run LOCALBIN="$1" RUN_FLAGS="$2"
status=$?
read -r _ _ _ _ pgrp _ _ tpgid _ < /proc/$$/stat
echo "make run exited $status; foreground group $tpgid, shell's group $pgrp"`
	// The metrics port may be taken on a shared machine.
	cmd := exec.Command("sh", "-c", script, "sh", t.TempDir(), "--metrics-bind-address 127.0.0.1:"+strconv.Itoa(port))
	cmd.Dir = root
	cmd.Env = append(freshMakeEnv(), "KUBEBUILDER_ASSETS="+assets)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// A session of its own with the terminal as its controlling terminal
	// (the child's fd 0): the shell leads the foreground group, as a login
	// shell does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer killSession(t, cmd.Process.Pid)

	var transcript syncBuffer
	ready, readyWriter := io.Pipe()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		// Ends with EIO once nothing holds the terminal any more.
		_, _ = io.Copy(teeWriter{&transcript, readyWriter}, terminal)
		_ = readyWriter.Close()
	}()
	kubeconfig, err := waitReady(ready, 3*time.Minute)
	_ = ready.CloseWithError(io.EOF) // the transcript keeps the rest
	if err != nil {
		t.Fatalf("%v; terminal:\n%s", err, tail(transcript.String(), 3000))
	}
	children := controlPlane(t, cmd.Process.Pid)
	if len(children) != 2 {
		t.Fatalf("kube-apiserver and etcd processes of make run: %v, want both", children)
	}

	if _, err := terminal.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the shell running make run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("make run still running a minute after Ctrl-C; terminal:\n%s", tail(transcript.String(), 3000))
	}
	select {
	case <-copied:
	case <-time.After(time.Minute):
		t.Errorf("the terminal still open a minute after the shell exited")
	}
	report := regexp.MustCompile(`make run exited (\d+); foreground group (\d+), shell's group (\d+)`).FindStringSubmatch(transcript.String())
	switch {
	case report == nil:
		t.Errorf("the shell did not report make's exit (killed by the Ctrl-C?); terminal:\n%s", tail(transcript.String(), 3000))
	case report[1] != "0":
		t.Errorf("make run exited %s after Ctrl-C, want 0; terminal:\n%s", report[1], tail(transcript.String(), 3000))
	case report[2] != report[3]:
		t.Errorf("after make run the terminal's foreground group is %s, want the shell's %s back", report[2], report[3])
	}
	checkRemoved(t, children, kubeconfig)
}

// openPty opens a pseudo-terminal pair: the master (the person's side) and
// the slave (the terminal the programs see).
func openPty(t *testing.T) (terminal, tty *os.File) {
	t.Helper()
	terminal, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine (%v): make run's Ctrl-C in a terminal is not tested", err)
	}
	conn, err := terminal.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioctlErr error
	if err := conn.Control(func(fd uintptr) {
		if ioctlErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioctlErr == nil { // unlockpt
			n, ioctlErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN) // ptsname
		}
	}); err != nil || ioctlErr != nil {
		terminal.Close()
		t.Fatalf("pseudo-terminal: %v %v", err, ioctlErr)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		terminal.Close()
		t.Fatal(err)
	}
	return terminal, tty
}

// freshMakeEnv is the environment without the variables of a make this test
// may run under (make test), so that `make run` behaves as typed in a shell.
func freshMakeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "MAKEFLAGS" && name != "MFLAGS" && name != "MAKELEVEL" {
			env = append(env, kv)
		}
	}
	return env
}

// killSession kills whatever of the session sid still runs: the shell and
// make, and devenv and its control plane in their own process group.
func killSession(t *testing.T, sid int) {
	t.Helper()
	for pid, p := range processes(t) {
		if p.session == sid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// teeWriter writes to w and, as long as it reads, to ready.
type teeWriter struct {
	w     io.Writer
	ready io.Writer
}

func (t teeWriter) Write(p []byte) (int, error) {
	_, _ = t.ready.Write(p)
	return t.w.Write(p)
}

// syncBuffer is a bytes.Buffer written by one goroutine and read by another.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
