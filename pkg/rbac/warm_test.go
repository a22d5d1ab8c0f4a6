package rbac

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// counts are the Ensurer's counters, by metric and labels.
func counts(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, vec := range map[string]*prometheus.CounterVec{"ensures": ensures, "misses": cacheMisses, "writes": apiWrites, "reads": apiReads} {
		ch := make(chan prometheus.Metric, 256)
		vec.Collect(ch)
		close(ch)
		for m := range ch {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				t.Fatal(err)
			}
			key := name
			for _, l := range d.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			out[key] = d.GetCounter().GetValue()
		}
	}
	return out
}

func delta(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// flightOnly is Ensure without its warm path.
func flightOnly(ctx context.Context, e *Ensurer, namespace, serviceAccount string) (Result, error) {
	return e.await(ctx, namespace+"/"+serviceAccount, func(ctx context.Context, progress func(string)) (Result, error) {
		return e.ensure(ctx, namespace, serviceAccount, progress)
	})
}

// TestWarmAnswersAsAFlight: whenever the warm path answers, a flight in
// its place gives the same result, makes no API call and counts the same;
// and it leaves to a flight every state in which there is something to
// write or to refuse. The cache holds only the Roles and RoleBindings
// labelled as ours, as the webhook's does.
func TestWarmAnswersAsAFlight(t *testing.T) {
	const ns = "demo"
	ctx := context.Background()
	labelled := func(name string) *corev1.ServiceAccount {
		return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	}
	foreign := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", Labels: map[string]string{"team": "a"}}}
	otherRole := Role(ns, "app")
	otherRole.Rules[0].Verbs = []string{"get"}
	otherBinding := RoleBinding(ns, "app")
	otherBinding.Subjects[0].Name = "someone"
	unownedRole, unownedBinding := Role(ns, "app"), RoleBinding(ns, "app")
	unownedRole.Labels, unownedBinding.Labels = nil, nil
	for _, tc := range []struct {
		name string
		objs []client.Object
		// primed: one ensure ran before, against a cache that never shows
		// what it creates if lagging.
		primed, lagging bool
		warm            bool
	}{
		{"ours, with its Role and RoleBinding", []client.Object{ServiceAccount(ns, "app"), Role(ns, "app"), RoleBinding(ns, "app")}, false, false, true},
		{"labelled, with its Role and RoleBinding", []client.Object{labelled("app"), Role(ns, "app"), RoleBinding(ns, "app")}, false, false, true},
		{"labelled, with a Role and RoleBinding of our name that are not ours but alike, not met yet", []client.Object{labelled("app"), unownedRole, unownedBinding}, false, false, false},
		{"labelled, with a Role and RoleBinding of our name that are not ours but alike, met and remembered", []client.Object{labelled("app"), unownedRole, unownedBinding}, true, false, true},
		{"all created here a moment ago, not cached yet", nil, true, true, true},
		{"someone else's", []client.Object{foreign}, false, false, true},
		{"nothing", nil, false, false, false},
		{"ours, no Role", []client.Object{ServiceAccount(ns, "app"), RoleBinding(ns, "app")}, false, false, false},
		{"ours, no RoleBinding", []client.Object{ServiceAccount(ns, "app"), Role(ns, "app")}, false, false, false},
		{"ours, a Role that grants something else", []client.Object{ServiceAccount(ns, "app"), otherRole, RoleBinding(ns, "app")}, false, false, false},
		{"ours, a RoleBinding that binds someone else", []client.Object{ServiceAccount(ns, "app"), Role(ns, "app"), otherBinding}, false, false, false},
		{"a Role and RoleBinding, no account", []client.Object{Role(ns, "app"), RoleBinding(ns, "app")}, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setup := func() (*gatedAPI, *Ensurer) {
				objs := make([]client.Object, len(tc.objs))
				for i, o := range tc.objs {
					objs[i] = o.DeepCopyObject().(client.Object)
				}
				api := newGatedAPI(objs...)
				e := ensurerOn(api)
				if tc.lagging {
					e.Cache, e.CacheWait = fake.NewClientBuilder().Build(), time.Hour
				}
				if tc.primed {
					if _, err := e.Ensure(ctx, ns, "app", false); err != nil {
						t.Fatalf("priming ensure: %v", err)
					}
				}
				return api, e
			}
			api, e := setup()
			calls := api.calls()
			before := counts(t)
			res, ok := e.warm(ctx, ns, "app")
			warmCounts := delta(before, counts(t))
			if ok != tc.warm {
				t.Fatalf("warm answered %v, want %v", ok, tc.warm)
			}
			if got := api.calls() - calls; got != 0 {
				t.Fatalf("the warm path made %d API calls", got)
			}
			if !ok {
				if len(warmCounts) != 0 {
					t.Fatalf("the warm path declined but counted %v", warmCounts)
				}
				return
			}
			flightAPI, fe := setup()
			calls = flightAPI.calls()
			before = counts(t)
			want, err := flightOnly(ctx, fe, ns, "app")
			flightCounts := delta(before, counts(t))
			if got := flightAPI.calls() - calls; err != nil || got != 0 {
				t.Fatalf("a flight in its place: %v, %d API calls", err, got)
			}
			if res.RBAC != want.RBAC || res.ManagedAccount != want.ManagedAccount || len(res.Created)+len(want.Created) != 0 {
				t.Errorf("warm: %+v; a flight: %+v", res, want)
			}
			if len(warmCounts) != len(flightCounts) {
				t.Fatalf("warm counted %v; a flight %v", warmCounts, flightCounts)
			}
			for k, v := range flightCounts {
				if warmCounts[k] != v {
					t.Fatalf("warm counted %v; a flight %v", warmCounts, flightCounts)
				}
			}
		})
	}
}
