// Package load creates many pods across many namespaces and ServiceAccounts
// through a real kube-apiserver at once, with the webhook in-process and its
// client bound by the shipped RBAC, and checks the end state and the
// webhook's own counters. make test runs the short form; make load runs
// -load-size=long.
package load

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/testenv"
)

var size = flag.String("load-size", "short", "short (make test) or long (make load)")

// sizes are the shapes of the run: namespaces x accounts per namespace x
// pods per account, created by that many concurrent clients.
var sizes = map[string]struct{ namespaces, accounts, pods, clients int }{
	"short": {namespaces: 6, accounts: 6, pods: 4, clients: 16},
	"long":  {namespaces: 40, accounts: 25, pods: 10, clients: 64},
}

var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.Suite{Name: "load", LogLevel: zapcore.ErrorLevel, Webhook: func(*server.Options) {}, Env: &env}.Main(m))
}

// TestLoad creates namespaces x accounts x pods pods, every account new, in
// random interleaving from many clients. Afterwards: no error; exactly one
// ServiceAccount, Role and RoleBinding per (namespace, account), each as the
// builders make it; every pod mutated exactly once; and the webhook's own
// count of API writes equals the number of objects it had to create.
func TestLoad(t *testing.T) {
	s, ok := sizes[*size]
	if !ok {
		t.Fatalf("unknown -load-size %q", *size)
	}
	ctx := context.Background()
	var nss []string
	for i := range s.namespaces {
		ns := fmt.Sprintf("load-%d", i)
		if err := env.CreateNamespace(ctx, ns, testenv.OptedIn()); err != nil {
			t.Fatal(err)
		}
		nss = append(nss, ns)
	}
	type job struct{ ns, sa string }
	var jobs []job
	for range s.pods {
		for a := range s.accounts {
			for _, ns := range nss {
				// Interleaved, so that the pods of one account arrive
				// concurrently from different clients.
				jobs = append(jobs, job{ns, fmt.Sprintf("sa-%d", a)})
			}
		}
	}
	queue := make(chan job, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)

	writesBefore := testenv.Counter(t, "token_projector_api_writes_total", nil)
	createdBefore := testenv.Counter(t, "token_projector_api_writes_total", map[string]string{"result": "created"})
	mutatedBefore := testenv.Counter(t, "token_projector_admissions_total", map[string]string{"resource": "pod", "outcome": "mutated"})
	erroredBefore := testenv.Counter(t, "token_projector_admissions_total", map[string]string{"outcome": "errored"})

	var mu sync.Mutex
	var errs []error
	var latencies []time.Duration
	start := time.Now()
	var wg sync.WaitGroup
	for range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: j.ns, GenerateName: j.sa + "-", Annotations: map[string]string{
						mutate.AnnotationAudience: "vault,sts.example.com", mutate.AnnotationServiceAccount: j.sa,
					}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}, {Name: "sidecar", Image: "envoy:1.30"}}},
				}
				t0 := time.Now()
				err := env.Admin.Create(ctx, p)
				mu.Lock()
				latencies = append(latencies, time.Since(t0))
				if err != nil {
					errs = append(errs, fmt.Errorf("%s/%s: %w", j.ns, j.sa, err))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("%d pods, %d namespaces x %d accounts, %d clients: %s (%.0f pods/s), latency p50 %s p99 %s max %s",
		len(jobs), s.namespaces, s.accounts, s.clients, took.Round(time.Millisecond), float64(len(jobs))/took.Seconds(),
		latencies[len(latencies)/2].Round(time.Millisecond), latencies[len(latencies)*99/100].Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond))
	if len(errs) > 0 {
		t.Fatalf("%d of %d pods failed; first: %v", len(errs), len(jobs), errs[0])
	}

	objects := float64(s.namespaces * s.accounts * 3)
	if got := testenv.Counter(t, "token_projector_api_writes_total", nil) - writesBefore; got != objects {
		t.Errorf("the webhook counts %v API writes, want %v: one create per object", got, objects)
	}
	if got := testenv.Counter(t, "token_projector_api_writes_total", map[string]string{"result": "created"}) - createdBefore; got != objects {
		t.Errorf("the webhook counts %v objects created, want %v", got, objects)
	}
	if got := testenv.Counter(t, "token_projector_admissions_total", map[string]string{"resource": "pod", "outcome": "mutated"}) - mutatedBefore; got != float64(len(jobs)) {
		t.Errorf("the webhook counts %v pods mutated, want %d", got, len(jobs))
	}
	if got := testenv.Counter(t, "token_projector_admissions_total", map[string]string{"outcome": "errored"}) - erroredBefore; got != 0 {
		t.Errorf("the webhook counts %v errored admissions", got)
	}

	var want []string
	for a := range s.accounts {
		want = append(want, fmt.Sprintf("sa-%d", a))
	}
	for _, ns := range nss {
		checkNamespace(t, ns, want, s.pods)
	}
}

// checkNamespace checks one namespace's end state: the managed objects are
// exactly one of each kind per account, as the builders make them, and
// every pod is mutated exactly once for its account.
func checkNamespace(t *testing.T, ns string, accounts []string, podsEach int) {
	t.Helper()
	ctx := context.Background()
	managed := client.MatchingLabels{rbac.LabelManagedBy: rbac.ManagedBy}
	var sas corev1.ServiceAccountList
	var roles rbacv1.RoleList
	var rbs rbacv1.RoleBindingList
	for _, l := range []client.ObjectList{&sas, &roles, &rbs} {
		if err := env.Admin.List(ctx, l, client.InNamespace(ns), managed); err != nil {
			t.Fatal(err)
		}
	}
	var saNames, roleNames, rbNames, wantRBAC []string
	for _, a := range accounts {
		wantRBAC = append(wantRBAC, rbac.Name(a))
	}
	for _, o := range sas.Items {
		saNames = append(saNames, o.Name)
	}
	for _, o := range roles.Items {
		roleNames = append(roleNames, o.Name)
		if want := rbac.Role(ns, accountOf(o.Name)); fmt.Sprint(o.Rules) != fmt.Sprint(want.Rules) {
			t.Errorf("Role %s/%s: rules %v", ns, o.Name, o.Rules)
		}
	}
	for _, o := range rbs.Items {
		rbNames = append(rbNames, o.Name)
		if want := rbac.RoleBinding(ns, accountOf(o.Name)); o.RoleRef != want.RoleRef || fmt.Sprint(o.Subjects) != fmt.Sprint(want.Subjects) {
			t.Errorf("RoleBinding %s/%s: %+v %+v", ns, o.Name, o.RoleRef, o.Subjects)
		}
	}
	for _, c := range []struct {
		kind      string
		got, want []string
	}{{"ServiceAccounts", saNames, accounts}, {"Roles", roleNames, wantRBAC}, {"RoleBindings", rbNames, wantRBAC}} {
		slices.Sort(c.got)
		w := slices.Clone(c.want)
		slices.Sort(w)
		if !slices.Equal(c.got, w) {
			t.Errorf("%s: managed %s %v, want one each of %v", ns, c.kind, c.got, w)
		}
	}

	var pods corev1.PodList
	if err := env.Admin.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	perAccount := map[string]int{}
	for i := range pods.Items {
		p := &pods.Items[i]
		perAccount[p.Spec.ServiceAccountName]++
		if !mutatedOnce(p) {
			t.Errorf("pod %s/%s is not mutated exactly once", ns, p.Name)
		}
	}
	for _, a := range accounts {
		if perAccount[a] != podsEach {
			t.Errorf("%s: %d pods run as %s, want %d", ns, perAccount[a], a, podsEach)
		}
	}
}

func accountOf(rbacName string) string {
	return rbacName[:len(rbacName)-len(mutate.RBACNameSuffix)]
}

// mutatedOnce: mutated exactly once, with both audiences in the volume.
func mutatedOnce(p *corev1.Pod) bool {
	if !testenv.MutatedOnce(p) {
		return false
	}
	for _, v := range p.Spec.Volumes {
		if v.Name == mutate.VolumeName && (v.Projected == nil || len(v.Projected.Sources) != 2) {
			return false
		}
	}
	return true
}
