package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// binaries are what hack/cluster.sh puts into its directory.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl",
	"containerd", "containerd-shim-runc-v2", "ctr", "runc", "cni/bridge", "cni/host-local", "cni/loopback"}

// hostTools are the host's commands the cluster needs.
var hostTools = []string{"ip", "nft", "nsenter", "unshare", "setsid", "mount", "umount", "bash", "sh", "awk", "sort"}

// Missing lists what this machine lacks to run the cluster (bin being
// hack/cluster.sh's directory): root, cgroups, overlayfs, host tools, the
// binaries, and a clean slate (no container cgroups of another runtime).
func Missing(bin string) []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the cluster makes network and mount namespaces, cgroups and mounts)")
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "pids")); err != nil {
		if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err != nil {
			missing = append(missing, "cgroups mounted at "+cgroupRoot)
		}
	}
	if fs, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(fs), "overlay") {
		missing = append(missing, "the overlay filesystem (containerd's snapshotter)")
	}
	for _, tool := range hostTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, "the "+tool+" command")
		}
	}
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			missing = append(missing, fmt.Sprintf("%s in %q (run hack/cluster.sh)", b, bin))
		}
	}
	for _, dir := range containerCgroups() {
		missing = append(missing, "no "+dir+" (another container runtime's cgroups; the cluster removes all of them at teardown)")
	}
	return missing
}
