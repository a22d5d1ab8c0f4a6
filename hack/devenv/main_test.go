package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/token-projector/token-projector/test/testenv"
)

// TestStopsCleanlyOnSignal runs `make run`'s own commands (as `make -n run`
// prints them; its last, the program, in a process group of its own as a
// shell gives a foreground job), waits for it to say it is ready, signals it
// as Ctrl-C in a terminal does (SIGINT to the whole process group) or as a
// process manager does (SIGTERM), and checks that it exits 0 having stopped
// the kube-apiserver and etcd it started and removed its kubeconfig.
func TestStopsCleanlyOnSignal(t *testing.T) {
	root, assets := repoAndAssets(t)
	bin := t.TempDir()
	plan := exec.Command("make", "-s", "-n", "run", "LOCALBIN="+bin)
	plan.Dir = root
	out, err := plan.Output()
	if err != nil {
		t.Fatalf("make -n run: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, line := range lines[:len(lines)-1] {
		step := exec.Command("sh", "-c", line)
		step.Dir = root
		step.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets)
		if out, err := step.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
	}
	runLine := lines[len(lines)-1]
	for _, tc := range []struct {
		name   string
		signal func(pid int) error
	}{
		{"Ctrl-C", func(pid int) error { return syscall.Kill(-pid, syscall.SIGINT) }},
		{"SIGTERM", func(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, err := testenv.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			// The metrics port may be taken on a shared machine.
			cmd := exec.Command("sh", "-c", runLine+" --metrics-bind-address 127.0.0.1:"+strconv.Itoa(port))
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets)
			// Its own process group, as a shell gives a foreground job.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			logFile := filepath.Join(t.TempDir(), "stderr")
			stderr, err := os.Create(logFile)
			if err != nil {
				t.Fatal(err)
			}
			defer stderr.Close()
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			defer func() {
				if cmd.ProcessState == nil {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				}
			}()

			kubeconfig, err := waitReady(stdout, 3*time.Minute)
			if err != nil {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				t.Fatalf("%v (stderr: %s)", err, logFile)
			}
			go func() { exited <- cmd.Wait() }()
			children := controlPlane(t, cmd.Process.Pid)
			if len(children) != 2 {
				t.Fatalf("kube-apiserver and etcd processes of devenv: %v, want both", children)
			}

			if err := tc.signal(cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					b, _ := os.ReadFile(logFile)
					t.Errorf("devenv exited with %v after %s, want 0; stderr:\n%s", err, tc.name, tail(string(b), 3000))
				}
			case <-time.After(time.Minute):
				t.Fatalf("devenv still running a minute after %s", tc.name)
			}
			checkRemoved(t, children, kubeconfig)
		})
	}
}

// checkRemoved checks that the kube-apiserver and etcd devenv started are
// gone and its kubeconfig removed, once devenv has exited.
func checkRemoved(t *testing.T, children map[int]string, kubeconfig string) {
	t.Helper()
	for pid, name := range children {
		if alive(pid) {
			t.Errorf("%s (pid %d) outlived devenv", name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := os.Stat(kubeconfig); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kubeconfig %s left behind (%v)", kubeconfig, err)
	}
}

// repoAndAssets returns the repository root, where `make run` runs, and the
// kube-apiserver and etcd directory it is given.
func repoAndAssets(t *testing.T) (root, assets string) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, err = testenv.Assets(root)
	if err != nil {
		t.Fatal(err)
	}
	return root, assets
}

// waitReady reads devenv's output until it prints its "Press Ctrl-C" line,
// and returns the kubeconfig it announced. The rest of the output is drained
// in the background so that devenv never blocks on a full pipe.
func waitReady(stdout interface{ Read([]byte) (int, error) }, deadline time.Duration) (string, error) {
	type result struct {
		kubeconfig string
		err        error
	}
	done := make(chan result, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		kubeconfig := ""
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if k, ok := strings.CutPrefix(line, "export KUBECONFIG="); ok {
				kubeconfig = k
			}
			if strings.HasPrefix(line, "Press Ctrl-C to stop") {
				done <- result{kubeconfig: kubeconfig}
				for sc.Scan() {
				}
				return
			}
		}
		done <- result{err: fmt.Errorf("devenv output ended before it was ready: %w", sc.Err())}
	}()
	select {
	case r := <-done:
		if r.err == nil && r.kubeconfig == "" {
			r.err = errors.New("devenv announced no KUBECONFIG")
		}
		return r.kubeconfig, r.err
	case <-time.After(deadline):
		return "", fmt.Errorf("devenv not ready within %s", deadline)
	}
}

// controlPlane finds the kube-apiserver and etcd processes descending from
// pid, by name.
func controlPlane(t *testing.T, root int) map[int]string {
	t.Helper()
	procs := processes(t)
	descends := func(pid int) bool {
		for i := 0; i < 64 && pid > 1; i++ {
			if pid = procs[pid].parent; pid == root {
				return true
			}
		}
		return false
	}
	found := map[int]string{}
	for pid, p := range procs {
		if (p.comm == "kube-apiserver" || p.comm == "etcd") && descends(pid) {
			found[pid] = p.comm
		}
	}
	return found
}

// process is what /proc/<pid>/stat says of a process.
type process struct {
	comm    string
	parent  int
	session int
}

// processes reads every process's parent, session and name from /proc.
func processes(t *testing.T) map[int]process {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	procs := map[int]process{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold spaces, so
		// split after ')'.
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 4 {
			continue
		}
		parent, _ := strconv.Atoi(fields[1])
		session, _ := strconv.Atoi(fields[3])
		procs[pid] = process{comm: s[open+1 : closing], parent: parent, session: session}
	}
	return procs
}

// alive reports whether pid is still a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
