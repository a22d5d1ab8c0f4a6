package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/token-projector/token-projector/test/bench/cachemem"
)

// scale measures the informer caches at scale in processes of their own:
// the full population, then without RBAC objects and then namespaces only,
// so that the cost splits by kind; with injected pods; with the bindings
// the webhook did not write; and the big cluster, with both.
func (b *bench) scale(ctx context.Context) error {
	n, k := b.c.scaleNamespaces, b.c.scaleServiceAccounts
	fmt.Printf("== informer cache memory: %d namespaces x %d ServiceAccounts (+ each namespace's default), each with Role and RoleBinding ==\n", n, k)
	fmt.Println("   the webhook's own cache configuration (pkg/server), fed by a synthetic API server; live heap after a full GC")
	full, err := cachememRun(ctx, b.c, n, k, true, filepath.Join(b.c.outDir, "cache.heap.pprof"))
	if err != nil {
		return err
	}
	noRBAC, err := cachememRun(ctx, b.c, n, k, false, "")
	if err != nil {
		return err
	}
	nsOnly, err := cachememRun(ctx, b.c, n, 0, false, "")
	if err != nil {
		return err
	}
	// The reconciler caches the pods the webhook injected, cut down by its
	// transform: 20 000 running, injected pods tell what one costs.
	podNS := min(n, 2000)
	pods, err := cachememRun(ctx, b.c, podNS, 0, false, "", "--pods=10")
	if err != nil {
		return err
	}
	// The bindings the webhook did not write (the Bindings cache, cut down
	// to their ServiceAccount subjects and indexed by them): the full
	// population and as many again per namespace, and ClusterRoleBindings.
	withBindings, err := cachememRun(ctx, b.c, n, k, true, "", bindingFlags...)
	if err != nil {
		return err
	}
	// A big cluster: the full population with 10 running pods per
	// namespace, one in ten injected (the others must cost nothing), and
	// the bindings.
	big, err := cachememRun(ctx, b.c, n, k, true, "", append([]string{"--pods=10", "--injected-every=10"}, bindingFlags...)...)
	if err != nil {
		return err
	}
	for _, r := range []cachemem.Result{full, noRBAC, nsOnly, pods, withBindings, big} {
		fmt.Printf("   cached %-62s heap %7.1f MiB  RSS %7.1f MiB  synced in %s\n",
			fmt.Sprint(r.Cached), mib(r.HeapBytes), mib(r.RSSBytes), r.Sync.Round(1e7))
	}
	sets := float64(n * k)
	perNS := float64(nsOnly.HeapBytes) / float64(n)
	perSA := float64(noRBAC.HeapBytes-nsOnly.HeapBytes) / float64(n*(k+1))
	perRBAC := float64(full.HeapBytes-noRBAC.HeapBytes) / sets
	perSet := float64(full.HeapBytes) / sets
	perPod := (float64(pods.HeapBytes) - float64(podNS)*(perNS+perSA)) / float64(podNS*10)
	bindings := withBindings.Cached["OtherRoleBinding"] + withBindings.Cached["ClusterRoleBinding"]
	perBinding := float64(withBindings.HeapBytes-full.HeapBytes) / float64(max(bindings, 1))
	fmt.Printf("   per Namespace %.0f B; per ServiceAccount %.0f B; per Role+RoleBinding %.0f B; per running pod %.0f B\n", perNS, perSA, perRBAC, perPod)
	fmt.Printf("   bindings not the webhook's: %d RoleBindings, %d ClusterRoleBindings: %+.1f MiB heap, %.0f B per binding (with its index entry)\n",
		withBindings.Cached["OtherRoleBinding"], withBindings.Cached["ClusterRoleBinding"], mib(withBindings.HeapBytes-full.HeapBytes), perBinding)
	fmt.Printf("   per ServiceAccount/Role/RoleBinding set, everything included (namespaces, default accounts): %.0f B; RSS %.0f B\n", perSet, float64(full.RSSBytes)/sets)
	fmt.Printf("   a cached ServiceAccount keeps: %v\n", full.Kept)
	fmt.Printf("   big cluster: %d namespaces, %d accounts with Role and RoleBinding, %d running pods of which %d injected, %d bindings not the webhook's: heap %.1f MiB, RSS %.1f MiB (%+.1f MiB heap for the pods and bindings)\n",
		n, n*k, n*10, big.Cached["Pod"], bindings, mib(big.HeapBytes), mib(big.RSSBytes), mib(big.HeapBytes-full.HeapBytes))
	top, err := pprofTop(filepath.Join(b.c.outDir, "cache.heap.pprof"), "-sample_index=inuse_space", "-top", "-nodecount=12")
	if err != nil {
		return err
	}
	fmt.Printf("-- go tool pprof -sample_index=inuse_space -top cache.heap.pprof\n%s\n", top)
	b.summary.cacheSet = perSet
	b.summary.cacheRan = true
	b.summary.bigCluster = big
	return nil
}

// bindingFlags are the bindings of the scale runs that have any: 5
// RoleBindings per namespace and 5 000 ClusterRoleBindings, each naming a
// ServiceAccount.
var bindingFlags = []string{"--role-bindings=5", "--cluster-role-bindings=5000"}

func cachememRun(ctx context.Context, c config, namespaces, serviceAccounts int, rbac bool, heapProfile string, extra ...string) (cachemem.Result, error) {
	self, err := os.Executable()
	if err != nil {
		return cachemem.Result{}, err
	}
	args := []string{"cachemem", "--namespaces=" + strconv.Itoa(namespaces), "--service-accounts=" + strconv.Itoa(serviceAccounts),
		"--rbac=" + strconv.FormatBool(rbac)}
	if heapProfile != "" {
		args = append(args, "--heap-profile="+heapProfile)
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, self, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return cachemem.Result{}, fmt.Errorf("cachemem %v: %w: %s", args[1:], err, tail(errOut.String(), 2000))
	}
	var r cachemem.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("cachemem output: %w: %s", err, tail(out.String(), 500))
	}
	return r, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
