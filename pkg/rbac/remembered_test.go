package rbac

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestUnlabelledAlikeIsRemembered: a Role and RoleBinding of our name that
// are not labelled as ours but grant exactly what ours would are never
// cached (the cache holds only our own); once met and accepted, they count
// as present for ForeignMemory, so that admissions (and restores) after the
// first make no API call, and after it one create and one live read each,
// once.
func TestUnlabelledAlikeIsRemembered(t *testing.T) {
	ctx := context.Background()
	const ns = "demo"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	role, rb := Role(ns, "app"), RoleBinding(ns, "app")
	role.Labels, rb.Labels = nil, nil
	role.UID, rb.UID = "role-uid", "rb-uid"
	api := newGatedAPI(sa, role, rb)
	e := ensurerOn(api)
	clock := newTestClock()
	e.now = clock.Now

	ensureCalls := func(what string, want int32) {
		t.Helper()
		calls := api.calls()
		res, err := e.Ensure(ctx, ns, "app", false)
		if err != nil || !res.RBAC || res.ManagedAccount || len(res.Created) != 0 {
			t.Fatalf("%s: %+v, %v; want RBAC for the labelled account, nothing created", what, res, err)
		}
		if got := api.calls() - calls; got != want {
			t.Fatalf("%s made %d API calls, want %d", what, got, want)
		}
	}
	ensureCalls("the first admission", 5) // the account read live, then a create and a live read of each
	before := counts(t)
	for range 10 {
		ensureCalls("a later admission", 0)
	}
	if got := delta(before, counts(t))["ensures kind=Role result=remembered"]; got != 10 {
		t.Errorf("ensures{Role,remembered} counted %v, want 10", got)
	}
	if res, ok := e.warm(ctx, ns, "app"); !ok || !res.RBAC {
		t.Errorf("the warm path did not answer: %+v, %v", res, ok)
	}
	if _, err := e.Ensure(ctx, ns, "app", true); err != nil {
		t.Errorf("dry run: %v", err)
	}
	calls := api.calls()
	if res, err := e.Restore(ctx, ns, "app"); err != nil || !res.RBAC || len(res.Created) != 0 {
		t.Errorf("restore: %+v, %v", res, err)
	}
	if got := api.calls() - calls; got != 0 {
		t.Errorf("restore made %d API calls, want 0 (nothing to grant: answered from memory)", got)
	}

	clock.advance(DefaultForeignMemory - 1)
	ensureCalls("an admission within ForeignMemory", 0)
	clock.advance(1)
	ensureCalls("the first admission after ForeignMemory", 5)
	ensureCalls("the next", 0)

	// A Role of our name that differs is never remembered: it is refused
	// each time it is met.
	other := newGatedAPI(sa.DeepCopy(), func() client.Object { r := role.DeepCopy(); r.Rules[0].Verbs = []string{"get"}; return r }(), rb.DeepCopy())
	e = ensurerOn(other)
	for range 2 {
		if _, err := e.Ensure(ctx, ns, "app", false); !IsConflict(err) {
			t.Fatalf("a Role of our name that differs: %v, want a conflict", err)
		}
	}
	if got := other.calls(); got != 6 {
		t.Errorf("%d API calls for two admissions meeting a Role that differs, want 6 (each: the account read live, the Role's create and live read)", got)
	}
}
