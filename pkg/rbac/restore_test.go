package rbac

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestRestore: a restore never creates the account (deleting it is how
// its owner revokes it) and reads it from the API server, not the cache;
// it ensures the Role and RoleBinding only of an account that exists and
// is the webhook's or labelled by its owner, never overwriting one that is
// not ours.
func TestRestore(t *testing.T) {
	const ns = "demo"
	labelled := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	foreign := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", Labels: map[string]string{"team": "a"}}}
	otherRole := Role(ns, "app")
	otherRole.Labels = nil
	otherRole.Rules[0].Verbs = []string{"get", "create"}
	for _, tc := range []struct {
		name string
		api  []client.Object
		// cache, if set, is what a stale cache shows instead of the API
		// server's objects.
		cache        []client.Object
		want         Result
		wantCreated  []string
		wantConflict bool
		wantCount    string
	}{
		{name: "missing account", wantCount: "missing"},
		{name: "an account that is not eligible", api: []client.Object{foreign}, wantCount: "unlabelled"},
		{name: "the webhook's account, its RoleBinding missing", api: []client.Object{ServiceAccount(ns, "app"), Role(ns, "app")},
			want: Result{RBAC: true, ManagedAccount: true}, wantCreated: []string{kindRoleBinding}, wantCount: "existing"},
		{name: "a labelled account, its Role and RoleBinding missing", api: []client.Object{labelled},
			want: Result{RBAC: true}, wantCreated: []string{kindRole, kindRoleBinding}, wantCount: "existing"},
		{name: "a labelled account, a Role of our name that is not ours", api: []client.Object{labelled, otherRole},
			wantConflict: true, wantCount: "existing"},
		{name: "an account deleted that a stale cache still shows", cache: []client.Object{ServiceAccount(ns, "app"), Role(ns, "app")}, wantCount: "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := make([]client.Object, len(tc.api))
			for i, o := range tc.api {
				objs[i] = o.DeepCopyObject().(client.Object)
			}
			api := newGatedAPI(objs...)
			e := ensurerOn(api)
			if tc.cache != nil {
				e.Cache = selected{fake.NewClientBuilder().WithObjects(tc.cache...).Build()}
			}
			before := counts(t)
			res, err := e.Restore(context.Background(), ns, "app")
			switch {
			case tc.wantConflict && !IsConflict(err):
				t.Fatalf("got %v, want a conflict", err)
			case !tc.wantConflict && err != nil:
				t.Fatal(err)
			}
			if res.RBAC != tc.want.RBAC || res.ManagedAccount != tc.want.ManagedAccount {
				t.Errorf("result %+v, want %+v", res, tc.want)
			}
			if got := createdKinds(res); !slices.Equal(got, tc.wantCreated) {
				t.Errorf("created %v, want %v", got, tc.wantCreated)
			}
			wantCreates := int32(len(tc.wantCreated))
			if tc.wantConflict {
				wantCreates++ // the create that met the Role
			}
			if got := api.writes.Load(); got != wantCreates {
				t.Errorf("%d creates, want %d", got, wantCreates)
			}
			var sa corev1.ServiceAccount
			if err := api.store.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "app"}, &sa); (err == nil) != (len(tc.api) > 0) {
				t.Errorf("the account after the restore: %v", err)
			}
			if got := delta(before, counts(t))["ensures kind=ServiceAccount result="+tc.wantCount]; got != 1 {
				t.Errorf("ensures{ServiceAccount,%s} counted %v, want 1", tc.wantCount, got)
			}
		})
	}
}
