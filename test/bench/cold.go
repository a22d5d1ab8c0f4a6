package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/test/bench/loadgen"
)

// coldCap bounds each cold run, whatever the API server's pace.
const coldCap = 60 * time.Second

// coldRun is one measured cold or burst run.
type coldRun struct {
	label       string
	concurrency int
	m           measured
	calls       calls
}

// cold measures the cold path over HTTP/2: every pod names a ServiceAccount
// that does not exist yet, so each admission creates a ServiceAccount, a
// Role and a RoleBinding; it must take exactly those 3 writes and one read:
// the list of the namespace's RoleBindings that checks that no binding the
// webhook did not write names the account (rbac.BoundError).
func (b *bench) cold(ctx context.Context) error {
	fmt.Println("== cold path: a new ServiceAccount per pod (HTTP/2); each admission must create SA, Role and RoleBinding: 3 writes, 1 read (its namespace's RoleBindings) ==")
	printColdHeader()
	want := 0
	var err error
	for _, conc := range concurrencies {
		set := fmt.Sprintf("cold%d", conc)
		bodies, uids, err := bodies(set, nsCold, b.c.coldRequests, func(i int) string { return fmt.Sprintf("%s-%04d", set, i) })
		if err != nil {
			return err
		}
		want += len(bodies)
		t, err := b.target("webhook", b.webhook.url, loadgen.HTTP2, bodies, uids, expectPatch)
		if err != nil {
			return err
		}
		m, err := measure(ctx, b.webhook, t, loadgen.Load{Concurrency: conc, MaxRequests: len(bodies), Duration: coldCap})
		if err != nil {
			return err
		}
		r := coldRun{label: fmt.Sprintf("h2 c=%d", conc), concurrency: conc, m: m, calls: apiCalls(m.metrics)}
		printCold(r)
		b.summary.cold = append(b.summary.cold, r)
	}
	if b.summary.coldCreateP50, err = b.plainCreateP50(ctx); err != nil {
		return err
	}
	fmt.Printf("\none plain create (a Role like the webhook's, by the webhook's user, one at a time): p50 %s over %d creates\n",
		ms(b.summary.coldCreateP50), b.c.coldRequests)
	sa, roles, bindings, err := b.countIdentities(ctx, nsCold, "cold")
	if err != nil {
		return err
	}
	b.summary.coldObjects = [3]int{sa, roles, bindings}
	fmt.Printf("\nin kube-apiserver afterwards: %d ServiceAccounts, %d Roles, %d RoleBindings of the cold sets (want %d each)\n\n", sa, roles, bindings, want)
	b.summary.coldWant = want
	return nil
}

// burst sends bursts of 64 simultaneous admissions naming one new
// ServiceAccount: all are admitted and the account's 3 objects are created
// once, however many pods race for them.
func (b *bench) burst(ctx context.Context, warmBodies [][]byte, warmUIDs []types.UID) error {
	const size = 64
	fmt.Printf("== burst: %d simultaneous admissions naming one new ServiceAccount; total API writes must be 3 ==\n", size)
	printColdHeader()
	for _, proto := range protocols {
		// Open the connections first, so that the burst races in the
		// webhook, not in TLS handshakes.
		warm, err := b.target("webhook", b.webhook.url, proto, warmBodies, warmUIDs, expectPatch)
		if err != nil {
			return err
		}
		if _, err := loadgen.Run(ctx, warm, loadgen.Load{Concurrency: size, MaxRequests: 2 * size}); err != nil {
			return err
		}
		for i := range b.c.bursts {
			sa := fmt.Sprintf("burst-%s-%d", strings.ReplaceAll(string(proto), "/", ""), i)
			bodies, uids, err := bodies(sa, nsBurst, size, func(int) string { return sa })
			if err != nil {
				return err
			}
			t, err := b.target("webhook", b.webhook.url, proto, bodies, uids, expectPatch)
			if err != nil {
				return err
			}
			m, err := measure(ctx, b.webhook, t, loadgen.Load{Concurrency: size, MaxRequests: size, Duration: coldCap})
			if err != nil {
				return err
			}
			r := coldRun{label: fmt.Sprintf("%s #%d", proto, i+1), m: m, calls: apiCalls(m.metrics)}
			printCold(r)
			b.summary.bursts = append(b.summary.bursts, r)
		}
	}
	fmt.Println()
	return nil
}

// countIdentities counts the ServiceAccounts, Roles and RoleBindings of
// namespace whose account name starts with prefix.
func (b *bench) countIdentities(ctx context.Context, namespace, prefix string) (int, int, int, error) {
	var sas corev1.ServiceAccountList
	var roles rbacv1.RoleList
	var bindings rbacv1.RoleBindingList
	for _, l := range []client.ObjectList{&sas, &roles, &bindings} {
		if err := b.env.Admin.List(ctx, l, client.InNamespace(namespace)); err != nil {
			return 0, 0, 0, err
		}
	}
	n := [3]int{}
	for i := range sas.Items {
		if strings.HasPrefix(sas.Items[i].Name, prefix) {
			n[0]++
		}
	}
	for i := range roles.Items {
		if strings.HasPrefix(roles.Items[i].Name, prefix) {
			n[1]++
		}
	}
	for i := range bindings.Items {
		if strings.HasPrefix(bindings.Items[i].Name, prefix) {
			n[2]++
		}
	}
	return n[0], n[1], n[2], nil
}

// plainCreateP50 is the baseline of the cold path: the median of creating
// one object with nothing else, in this run: a Role granting what the
// webhook's Roles grant, created by the webhook's own user (its client, its
// RBAC), one at a time. A Role, not a ServiceAccount: kube-apiserver's RBAC
// escalation check on a Role or RoleBinding create reads the creator's
// bindings with a consistent list, which costs up to its watch cache's
// 100 ms progress tick, against a few milliseconds for a ServiceAccount; the
// superuser skips that check. A new account costs, at the least, that Role
// (the ServiceAccount created at the same time) and then the RoleBinding,
// which pays the same check: about two of these.
func (b *bench) plainCreateP50(ctx context.Context) (time.Duration, error) {
	// Unthrottled, as the webhook's own client is (pkg/server): client-go's
	// default 5 requests a second would make each create wait 200 ms.
	cfg := rest.CopyConfig(b.env.WebhookConfig)
	cfg.QPS = -1
	c, err := client.New(cfg, client.Options{Scheme: b.env.Scheme})
	if err != nil {
		return 0, err
	}
	took := make([]time.Duration, 0, b.c.coldRequests)
	for i := range b.c.coldRequests {
		role := rbac.Role(nsCold, fmt.Sprintf("plain-%04d", i))
		role.Labels = nil // not one of the webhook's: kept out of its cache
		start := time.Now()
		if err := c.Create(ctx, role); err != nil {
			return 0, fmt.Errorf("baseline create: %w", err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took[len(took)/2], nil
}
