package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Addresses inside the cluster's network namespace; no packet leaves it.
const (
	// NodeIP is the node's address, on one end of a veth pair kept inside
	// the namespace (the kubelet refuses a loopback node IP, and this
	// kernel may have no dummy driver).
	NodeIP = "10.213.0.1"
	// PodCIDR is the CNI bridge's range; pods get their own addresses.
	PodCIDR = "10.214.0.0/24"
	// ServiceCIDR holds the Services' cluster IPs, which kube-proxy
	// (nftables mode) translates to their endpoints, as in any cluster: the
	// kubernetes Service's for the pods' in-cluster configuration, and the
	// webhook Service's for kube-apiserver.
	ServiceCIDR = "10.96.0.0/16"
	// KubernetesServiceIP is the first address of ServiceCIDR.
	KubernetesServiceIP = "10.96.0.1"
	// APIServerPort is kube-apiserver's port: the kubernetes Service's.
	APIServerPort = 443
)

// netns is a network namespace made with `ip netns add`. Processes enter
// it with nsenter --net, never `ip netns exec`, which remounts /sys and
// hides /sys/fs/cgroup from the kubelet and runc.
type netns struct {
	name string
	// createdRunNetns: `ip netns add` created /run/netns (and bind-mounted
	// it onto itself), which teardown undoes.
	createdRunNetns bool
}

func (n *netns) path() string { return "/run/netns/" + n.name }

// createNetns makes the namespace, its loopback and the node's veth pair.
func createNetns(name string) (*netns, error) {
	n := &netns{name: name}
	if _, err := os.Stat(n.path()); err == nil {
		return nil, fmt.Errorf("network namespace %s exists already: a previous run was not torn down (ip netns del %s)", name, name)
	}
	if _, err := os.Stat("/run/netns"); errors.Is(err, os.ErrNotExist) {
		n.createdRunNetns = true
	}
	if err := ip("netns", "add", name); err != nil {
		return n, err
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "tpveth0", "type", "veth", "peer", "name", "tpveth1"},
		{"addr", "add", NodeIP + "/24", "dev", "tpveth0"},
		{"link", "set", "tpveth0", "up"},
		{"link", "set", "tpveth1", "up"},
		// Components want a default route; it leads nowhere.
		{"route", "add", "default", "dev", "tpveth0"},
	} {
		if err := ip(append([]string{"-n", name}, args...)...); err != nil {
			return n, err
		}
	}
	return n, nil
}

// delete removes the namespace and what `ip netns add` created.
func (n *netns) delete() error {
	var errs []error
	if _, err := os.Stat(n.path()); err == nil {
		errs = append(errs, ip("netns", "del", n.name))
	}
	if n.createdRunNetns {
		if err := unix.Unmount("/run/netns", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmounting /run/netns: %w", err))
		}
		if err := os.Remove("/run/netns"); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// do runs fn on an OS thread that entered the namespace; the sockets fn
// makes stay in it. That thread is never returned to the Go scheduler (the
// goroutine exits locked, so the runtime ends the thread): no other
// goroutine ever runs in the namespace by accident.
func (n *netns) do(fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		f, err := os.Open(n.path())
		if err != nil {
			errc <- err
			return
		}
		defer func() { _ = f.Close() }()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering %s: %w", n.path(), err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// dial connects to addr from inside the namespace (a pod's IP, say).
func (n *netns) dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	var d net.Dialer
	if nsErr := n.do(func() { c, err = d.DialContext(ctx, network, addr) }); nsErr != nil {
		return nil, nsErr
	}
	return c, err
}

// listen listens on addr inside the namespace.
func (n *netns) listen(network, addr string) (ln net.Listener, err error) {
	if nsErr := n.do(func() { ln, err = net.Listen(network, addr) }); nsErr != nil {
		return nil, nsErr
	}
	return ln, err
}
