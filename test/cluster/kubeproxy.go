package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// kubeProxyHealthz is kube-proxy's health endpoint, on the namespace's
// loopback.
const kubeProxyHealthz = "127.0.0.1:10256"

// startKubeProxy runs kube-proxy in nftables mode (its rules live in the
// network namespace and go with it; iptables mode would need the xtables
// modules and the iptables commands besides). It writes no host-wide
// setting: conntrack's table size and timeouts are left as they are (0), and
// the per-namespace sysctls it sets belong to the cluster's namespace.
func (c *Cluster) startKubeProxy(ctx context.Context) error {
	if _, err := c.start("kube-proxy", filepath.Join(c.bin, "kube-proxy"),
		"--kubeconfig="+c.pki.path("kube-proxy.kubeconfig"),
		"--proxy-mode=nftables", "--hostname-override="+NodeName,
		"--cluster-cidr="+PodCIDR,
		"--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address="+kubeProxyHealthz,
		"--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
		"--v=1"); err != nil {
		return err
	}
	// Healthy once it has programmed the rules of the Services it has seen
	// (the kubernetes Service at least).
	return c.waitFor(ctx, "kube-proxy /healthz and the kubernetes Service's rules", 2*time.Minute, func(ctx context.Context) (bool, error) {
		if ok, err := c.get(ctx, "http://"+kubeProxyHealthz+"/healthz", nil); !ok {
			return false, err
		}
		return c.ProxiesService(KubernetesServiceIP)
	})
}

// ProxiesService reports whether kube-proxy's nftables rules in the
// cluster's namespace translate the cluster IP ip and, if endpoints are
// given, send it to each of those addresses: a Service whose endpoints
// kube-proxy has not synced yet has rules that refuse connections.
func (c *Cluster) ProxiesService(ip string, endpoints ...string) (bool, error) {
	rules, err := c.kubeProxyRules()
	if err != nil || !strings.Contains(rules, ip) {
		return false, err
	}
	for _, ep := range endpoints {
		if !strings.Contains(rules, ep) {
			return false, nil
		}
	}
	return true, nil
}

// kubeProxyRules is kube-proxy's nftables table in the cluster's namespace.
func (c *Cluster) kubeProxyRules() (string, error) {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return "", fmt.Errorf("kube-proxy's nftables mode needs the nft command: %w", err)
	}
	out, err := c.run(nft, "list", "table", "ip", "kube-proxy")
	return string(out), err
}
