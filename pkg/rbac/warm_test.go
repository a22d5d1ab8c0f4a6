package rbac

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// TestWarmAnswersAsAFlight: whenever the warm path answers, a flight in
// its place gives the same result, writes nothing and counts the same; and
// it leaves to a flight every state in which there is something to write
// or to refuse.
func TestWarmAnswersAsAFlight(t *testing.T) {
	const ns = "demo"
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
		warm bool
	}{
		{"ours, with its Role and RoleBinding", []client.Object{ServiceAccount(ns, "app"), Role(ns, "app"), RoleBinding(ns, "app")}, true},
		{"labelled, with its Role and RoleBinding", []client.Object{labelled("app"), Role(ns, "app"), RoleBinding(ns, "app")}, true},
		{"labelled, with a Role and RoleBinding of our name that are not ours but alike", []client.Object{labelled("app"), unownedRole, unownedBinding}, true},
		{"someone else's", []client.Object{foreign}, true},
		{"nothing", nil, false},
		{"ours, no Role", []client.Object{ServiceAccount(ns, "app"), RoleBinding(ns, "app")}, false},
		{"ours, no RoleBinding", []client.Object{ServiceAccount(ns, "app"), Role(ns, "app")}, false},
		{"ours, a Role that grants something else", []client.Object{ServiceAccount(ns, "app"), otherRole, RoleBinding(ns, "app")}, false},
		{"ours, a RoleBinding that binds someone else", []client.Object{ServiceAccount(ns, "app"), Role(ns, "app"), otherBinding}, false},
		{"a Role and RoleBinding, no account", []client.Object{Role(ns, "app"), RoleBinding(ns, "app")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			copies := func() []client.Object {
				out := make([]client.Object, len(tc.objs))
				for i, o := range tc.objs {
					out[i] = o.DeepCopyObject().(client.Object)
				}
				return out
			}
			api := newGatedAPI(copies()...)
			before := counts(t)
			res, ok := ensurerOn(api).warm(context.Background(), ns, "app")
			warmCounts := delta(before, counts(t))
			if ok != tc.warm {
				t.Fatalf("warm answered %v, want %v", ok, tc.warm)
			}
			if api.writes.Load() != 0 {
				t.Fatalf("the warm path wrote %d objects", api.writes.Load())
			}
			if !ok {
				if len(warmCounts) != 0 {
					t.Fatalf("the warm path declined but counted %v", warmCounts)
				}
				return
			}
			flightAPI := newGatedAPI(copies()...)
			before = counts(t)
			want, err := ensurerOn(flightAPI).await(context.Background(), ns, "app", true)
			flightCounts := delta(before, counts(t))
			if err != nil || flightAPI.writes.Load() != 0 {
				t.Fatalf("a flight in its place: %v, %d writes", err, flightAPI.writes.Load())
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
