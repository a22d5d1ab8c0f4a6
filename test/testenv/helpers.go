package testenv

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// Counter sums the counter name of the in-process webhook's metrics registry
// over the series whose labels include every pair of match (nil: all).
func Counter(t testing.TB, name string, match map[string]string) float64 {
	t.Helper()
	return sum(t, name, match, func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
}

// Gauge is Counter for a gauge.
func Gauge(t testing.TB, name string, match map[string]string) float64 {
	t.Helper()
	return sum(t, name, match, func(m *dto.Metric) float64 { return m.GetGauge().GetValue() })
}

func sum(t testing.TB, name string, match map[string]string, value func(*dto.Metric) float64) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			found := 0
			for _, l := range m.GetLabel() {
				if v, ok := match[l.GetName()]; ok && v == l.GetValue() {
					found++
				}
			}
			if found == len(match) {
				total += value(m)
			}
		}
	}
	return total
}

// Identity is the three objects the webhook ensures for an account, empty
// but for their keys, to read into.
func Identity(ns, sa string) []client.Object {
	return []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rbac.Name(sa)}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rbac.Name(sa)}},
	}
}

// Exists reads obj live as the admin and reports whether it exists.
func (e *Env) Exists(t testing.TB, obj client.Object) bool {
	t.Helper()
	err := e.Admin.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// WaitFor polls cond every 100ms until it holds, failing the test if it
// does not within deadline.
func WaitFor(t testing.TB, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, deadline, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("%s: not within %s", what, deadline)
	}
}

// MutatedOnce reports whether the pod carries exactly one token volume, one
// token mount per container, the status annotation and the injected label:
// what the webhook leaves, however often it ran.
func MutatedOnce(p *corev1.Pod) bool {
	vols := 0
	for _, v := range p.Spec.Volumes {
		if v.Name == mutate.VolumeName {
			vols++
		}
	}
	if vols != 1 || p.Annotations[mutate.AnnotationStatus] == "" || p.Labels[mutate.LabelInjected] != mutate.InjectedTrue {
		return false
	}
	for _, c := range p.Spec.Containers {
		n := 0
		for _, m := range c.VolumeMounts {
			if m.Name == mutate.VolumeName {
				n++
			}
		}
		if n != 1 {
			return false
		}
	}
	return true
}
