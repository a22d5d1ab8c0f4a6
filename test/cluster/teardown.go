package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// watchedHostPaths are paths the components write to unless kept away
// from the host; teardown fails if one appeared.
var watchedHostPaths = []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd", "/usr/libexec/kubernetes", "/var/lib/cni", "/etc/cni/net.d"}

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// containerCgroups are the cgroups runc made for containers: with
// cgroupsPerQOS false the kubelet names no parent, and containerd puts
// every container in /k8s.io/<id> of every hierarchy. Start refuses to run
// when one exists, so teardown may remove them all.
func containerCgroups() []string {
	dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "k8s.io"))
	if _, err := os.Stat(filepath.Join(cgroupRoot, "k8s.io")); err == nil {
		dirs = append(dirs, filepath.Join(cgroupRoot, "k8s.io"))
	}
	return dirs
}

// Stop tears the cluster down, in order: the kubelet, the containers, the
// runtime, the control plane, the mounts, the holder, the cgroups and the
// namespace. Then it checks that nothing is left, and returns what is.
// Stop runs once; later calls return the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	signal := c.signals
	defer func() {
		if signal != nil {
			stopSignals(signal)
		}
	}()
	byName := map[string]*daemon{}
	for _, d := range c.daemons {
		byName[d.name] = d
	}
	var errs []error
	if d := byName["kubelet"]; d != nil {
		d.stop(syscall.SIGTERM, 10*time.Second)
	}
	for range 5 {
		if killContainers() == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if d := byName["containerd"]; d != nil {
		d.stop(syscall.SIGTERM, 10*time.Second)
	}
	// The shims outlive containerd; they, like everything started inside,
	// share the holder's mount namespace.
	killInMountNamespace(c.holderPID(), c.daemons)
	for _, name := range []string{"kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		if d := byName[name]; d != nil {
			d.stop(syscall.SIGTERM, 15*time.Second)
		}
	}
	if pid := c.holderPID(); pid > 0 {
		// Deepest first; the namespace goes with its last process anyway,
		// but a mount that outlived it would show here.
		if out, err := c.run("sh", "-c", `awk -v d="$0" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done`, c.dir); err != nil {
			errs = append(errs, fmt.Errorf("unmounting inside the cluster: %w: %s", err, out))
		}
		c.holder.stop(syscall.SIGTERM, 5*time.Second)
	}
	for _, dir := range containerCgroups() {
		if err := removeCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if c.proxy != nil {
		errs = append(errs, c.proxy.close())
	}
	if c.registry != nil {
		errs = append(errs, c.registry.close())
	}
	if c.ns != nil {
		errs = append(errs, c.ns.delete())
	}
	errs = append(errs, c.leftovers())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tearing the cluster down (logs kept in %s): %w", filepath.Join(c.dir, "logs"), err)
	}
	return os.RemoveAll(c.dir)
}

func (c *Cluster) holderPID() int {
	if c.holder == nil || c.holder.exited() {
		return 0
	}
	return c.holder.cmd.Process.Pid
}

// killContainers kills every process in a container cgroup and returns how
// many it found.
func killContainers() int {
	n := 0
	for _, dir := range containerCgroups() {
		_ = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			for _, pid := range readPIDs(path) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					n++
				}
			}
			return nil
		})
	}
	return n
}

func readPIDs(file string) []int {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var pids []int
	s := bufio.NewScanner(f)
	for s.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(s.Text())); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killInMountNamespace kills every process in holder's mount namespace
// but the holder and the running daemons (stopped in order after).
func killInMountNamespace(holder int, daemons []*daemon) {
	if holder <= 0 {
		return
	}
	keep := map[int]bool{holder: true}
	for _, d := range daemons {
		if !d.exited() {
			keep[d.cmd.Process.Pid] = true
		}
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder))
	if err != nil {
		return
	}
	for _, pid := range processes() {
		if keep[pid] {
			continue
		}
		if other, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && other == ns {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func processes() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeCgroup removes a cgroup directory tree, deepest first (a cgroup
// directory is removed with rmdir, never by deleting its files).
func removeCgroup(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	slices.Reverse(dirs)
	var last error
	for range 20 {
		last = nil
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				last = fmt.Errorf("removing cgroup %s: %w", d, err)
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(250 * time.Millisecond) // processes killed a moment ago may still be leaving
	}
	return last
}

// leftovers reports any process, mount, cgroup, namespace or host path
// the cluster left behind.
func (c *Cluster) leftovers() error {
	var left []string
	for _, pid := range processes() {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if strings.Contains(string(cmdline), c.dir) || (c.ns != nil && strings.Contains(string(cmdline), c.ns.path())) {
			if state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !isZombie(state) {
				left = append(left, fmt.Sprintf("process %d (%s)", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
			}
		}
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for line := range strings.SplitSeq(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], c.dir) {
				left = append(left, "mount "+f[4])
			}
		}
	}
	for _, dir := range containerCgroups() {
		left = append(left, "cgroup "+dir)
	}
	if c.ns != nil {
		if _, err := os.Stat(c.ns.path()); err == nil {
			left = append(left, "network namespace "+c.ns.name)
		}
	}
	for p, existed := range c.hostPaths {
		if _, err := os.Lstat(p); err == nil && !existed {
			left = append(left, "host path "+p)
		}
	}
	if len(left) > 0 {
		slices.Sort(left)
		return fmt.Errorf("left behind: %s", strings.Join(left, "; "))
	}
	return nil
}

// isZombie reads /proc/<pid>/stat's state field: a zombie is dead, waiting
// for its parent to read its status.
func isZombie(stat []byte) bool {
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] == 'Z'
	}
	return false
}
