package cachemem

import (
	"bytes"
	"context"
	"slices"
	"testing"
)

// TestMeasureSmall runs the measurement of make bench on a small synthetic
// cluster: every object reaches the webhook's caches through its real
// configuration, the transforms have cut what the webhook never reads, and
// a heap profile is written; of the pods, only those the webhook injected
// are cached.
func TestMeasureSmall(t *testing.T) {
	shape := Shape{Namespaces: 20, ServiceAccounts: 3, RBAC: true, Pods: 4, InjectedEvery: 2, RoleBindings: 2, ClusterRoleBindings: 7}
	var profile bytes.Buffer
	res, err := Measure(context.Background(), shape, &profile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"Namespace": 20, "ServiceAccount": 20 * 4, "Role": 20 * 3, "RoleBinding": 20 * 3, "Pod": 20 * 4 / 2,
		"OtherRoleBinding": 20 * 2, "ClusterRoleBinding": 7}
	for kind, n := range want {
		if res.Cached[kind] != n {
			t.Errorf("cached %ss: %d, want %d (all: %v)", kind, res.Cached[kind], n, res.Cached)
		}
	}
	for _, dropped := range []string{"annotations", "managedFields"} {
		if slices.Contains(res.Kept, dropped) {
			t.Errorf("a cached ServiceAccount kept its %s: %v", dropped, res.Kept)
		}
	}
	if !slices.Contains(res.Kept, "name") || !slices.Contains(res.Kept, "namespace") {
		t.Errorf("a cached ServiceAccount lost its name or namespace: %v", res.Kept)
	}
	if res.HeapBytes <= 0 || profile.Len() == 0 {
		t.Errorf("heap growth %d bytes, profile %d bytes", res.HeapBytes, profile.Len())
	}
	for _, path := range []string{"/api/v1/namespaces", "/api/v1/serviceaccounts", "/apis/rbac.authorization.k8s.io/v1/roles", "/apis/rbac.authorization.k8s.io/v1/rolebindings",
		"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"} {
		if res.Requests["GET "+path] == 0 {
			t.Errorf("the caches never asked for %s: %v", path, res.Requests)
		}
	}
}
