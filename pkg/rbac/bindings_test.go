package rbac

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// bindingsCache is the webhook's Bindings cache of objs as pkg/server sets
// it up: the bindings not ours (NotOurs, the informers' selector), indexed
// by the ServiceAccounts they name.
func bindingsCache(objs ...client.Object) client.Reader {
	var notOurs []client.Object
	for _, o := range objs {
		if NotOurs().Matches(labels.Set(o.GetLabels())) {
			notOurs = append(notOurs, o.DeepCopyObject().(client.Object))
		}
	}
	return fake.NewClientBuilder().WithObjects(notOurs...).
		WithIndex(&rbacv1.RoleBinding{}, IndexServiceAccountSubject, ServiceAccountSubjects).
		WithIndex(&rbacv1.ClusterRoleBinding{}, IndexServiceAccountSubject, ServiceAccountSubjects).
		Build()
}

func roleBinding(ns, name string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   subjects,
	}
}

func clusterRoleBinding(name string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   subjects,
	}
}

func saSubject(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// TestBoundAccountIsNotCreated: an account that a RoleBinding (in its
// namespace or any other) or a ClusterRoleBinding the webhook did not
// write names as a subject, as Kubernetes RBAC matches subjects, is not
// created, dry run included: the answer is a *BoundError naming the
// binding, and nothing is written. The webhook's own RoleBinding, groups
// and other accounts' bindings do not count. A binding the cache has not
// shown yet, in the account's namespace, is found by the live check.
func TestBoundAccountIsNotCreated(t *testing.T) {
	const ns, sa = "team-a", "ci-deployer"
	leftover := RoleBinding(ns, sa) // the webhook's own, left behind by a deleted account
	for _, tc := range []struct {
		name     string
		bindings []client.Object
		// cached is false for a binding the Bindings cache has not shown yet.
		uncached bool
		// want names the binding in the denial; "" is no denial.
		want string
	}{
		{name: "a ClusterRoleBinding", bindings: []client.Object{clusterRoleBinding("deployers", saSubject(ns, sa))},
			want: "ClusterRoleBinding deployers (grants ClusterRole cluster-admin)"},
		{name: "a ClusterRoleBinding to its user name", bindings: []client.Object{clusterRoleBinding("deployers", userSubject("system:serviceaccount:"+ns+":"+sa))},
			want: "ClusterRoleBinding deployers"},
		{name: "a RoleBinding in its namespace", bindings: []client.Object{roleBinding(ns, "deploy", saSubject(ns, sa))},
			want: "RoleBinding team-a/deploy (grants ClusterRole edit)"},
		{name: "a RoleBinding whose subject's namespace is the binding's", bindings: []client.Object{roleBinding(ns, "deploy", saSubject("", sa))},
			want: "RoleBinding team-a/deploy"},
		{name: "a RoleBinding in another namespace", bindings: []client.Object{roleBinding("prod", "deploy", saSubject(ns, sa))},
			want: "RoleBinding prod/deploy"},
		{name: "a RoleBinding not cached yet (GitOps: applied a moment before the pod)", uncached: true,
			bindings: []client.Object{roleBinding(ns, "deploy", saSubject(ns, sa))}, want: "RoleBinding team-a/deploy"},
		{name: "the webhook's own RoleBinding", bindings: []client.Object{leftover}},
		{name: "the webhook's own RoleBinding, not cached yet", uncached: true, bindings: []client.Object{leftover}},
		{name: "a group of every account", bindings: []client.Object{
			clusterRoleBinding("all", rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + ns})}},
		{name: "a same-named account of another namespace", bindings: []client.Object{
			clusterRoleBinding("other", saSubject("team-b", sa)), roleBinding(ns, "other", saSubject("team-b", sa)),
			clusterRoleBinding("other-user", userSubject("system:serviceaccount:team-b:"+sa))}},
		{name: "another account", bindings: []client.Object{roleBinding(ns, "other", saSubject(ns, "web"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			objs := make([]client.Object, len(tc.bindings))
			for i, b := range tc.bindings {
				objs[i] = b.DeepCopyObject().(client.Object)
			}
			api := newGatedAPI(objs...)
			e := ensurerOn(api)
			e.Bindings = bindingsCache()
			if !tc.uncached {
				e.Bindings = bindingsCache(tc.bindings...)
			}
			dry, dryErr := e.Ensure(ctx, ns, sa, true)
			res, err := e.Ensure(ctx, ns, sa, false)
			if tc.want == "" {
				if err != nil || !res.ManagedAccount || !res.RBAC {
					t.Fatalf("got %+v, %v; want the account created with its RBAC", res, err)
				}
				if dryErr != nil || !dry.ManagedAccount {
					t.Errorf("dry run: %+v, %v; want the account it would create", dry, dryErr)
				}
				return
			}
			var bound *BoundError
			if !IsBound(err) || !strings.Contains(err.Error(), tc.want) || len(res.Created) != 0 {
				t.Fatalf("got %+v, %v; want a BoundError naming %s and nothing created", res, err, tc.want)
			}
			for _, s := range []string{"ServiceAccount team-a/ci-deployer does not exist", "kubectl create serviceaccount -n team-a ci-deployer",
				mutate.LabelInject + "=" + mutate.InjectEnabled, "remove the binding"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the denial does not say %q: %v", s, err)
				}
			}
			if errors.As(err, &bound); bound.Namespace != ns || bound.ServiceAccount != sa {
				t.Errorf("BoundError about %s/%s", bound.Namespace, bound.ServiceAccount)
			}
			if tc.uncached == IsBound(dryErr) {
				t.Errorf("dry run: %v; want a BoundError exactly when the cache shows the binding", dryErr)
			}
			if got := api.writes.Load(); got != 0 {
				t.Errorf("%d creates, want none", got)
			}
			if err := api.store.Get(ctx, client.ObjectKey{Namespace: ns, Name: sa}, &corev1.ServiceAccount{}); !apierrors.IsNotFound(err) {
				t.Errorf("the account: %v, want NotFound", err)
			}
		})
	}
}

// TestBoundButCreatedMeanwhile: bindings name an account the cache does
// not show, but it exists (created with them a moment ago): it is judged as
// any existing account is, never denied for its bindings nor written to.
func TestBoundButCreatedMeanwhile(t *testing.T) {
	const ns, sa = "team-a", "ci-deployer"
	crb := clusterRoleBinding("deployers", saSubject(ns, sa))
	for _, tc := range []struct {
		name string
		acct *corev1.ServiceAccount
		want Result
	}{
		{"not eligible", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}, Result{}},
		{"labelled", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa, Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}, Result{RBAC: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newGatedAPI(tc.acct, crb.DeepCopy())
			e := ensurerOn(api)
			e.Cache = selected{fake.NewClientBuilder().Build()} // has not shown the account yet
			e.Bindings = bindingsCache(crb)
			res, err := e.Ensure(context.Background(), ns, sa, false)
			if err != nil || res.RBAC != tc.want.RBAC || res.ManagedAccount {
				t.Fatalf("got %+v, %v; want %+v", res, err, tc.want)
			}
			if got := createdKinds(res); slices.Contains(got, kindServiceAccount) {
				t.Errorf("created %v", got)
			}
		})
	}
}

// TestStaleCachedAccountIsReadBeforeGranting: a cached account that looks
// eligible, whose Role and RoleBinding are missing, is read from the API
// server before they are created: one whose owner removed the label a
// moment ago gets none; one deleted a moment ago is missing, so a leftover
// binding keeps it from being created again, and without one a fresh
// account (a new UID) is created, as a cache that had seen the deletion
// would have answered.
func TestStaleCachedAccountIsReadBeforeGranting(t *testing.T) {
	const ns, sa = "team-a", "app"
	ctx := context.Background()
	labelled := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa, UID: "old-uid", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	unlabelled := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa, UID: "old-uid"}}
	leftover := roleBinding(ns, "deploy", saSubject(ns, sa))
	for _, tc := range []struct {
		name      string
		live      []client.Object
		wantBound bool
		wantFresh bool
	}{
		{name: "label removed", live: []client.Object{unlabelled}},
		{name: "deleted, a binding left behind", live: []client.Object{leftover}, wantBound: true},
		{name: "deleted", wantFresh: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := make([]client.Object, len(tc.live))
			for i, o := range tc.live {
				objs[i] = o.DeepCopyObject().(client.Object)
			}
			api := newGatedAPI(objs...)
			e := ensurerOn(api)
			e.Cache = selected{fake.NewClientBuilder().WithObjects(labelled.DeepCopy()).Build()}
			res, err := e.Ensure(ctx, ns, sa, false)
			switch {
			case tc.wantBound && !IsBound(err):
				t.Fatalf("got %v, want a BoundError", err)
			case !tc.wantBound && err != nil:
				t.Fatal(err)
			}
			var rb rbacv1.RoleBinding
			rbErr := api.store.Get(ctx, client.ObjectKey{Namespace: ns, Name: Name(sa)}, &rb)
			if !tc.wantFresh {
				if res.RBAC || len(res.Created) != 0 || !apierrors.IsNotFound(rbErr) {
					t.Errorf("got %+v, RoleBinding %v; want no RBAC and nothing created", res, rbErr)
				}
				return
			}
			var acct corev1.ServiceAccount
			if err := api.store.Get(ctx, client.ObjectKey{Namespace: ns, Name: sa}, &acct); err != nil || acct.UID == labelled.UID || !IsManaged(&acct) {
				t.Errorf("the account: %v, %v; want a fresh one of the webhook's", acct.ObjectMeta, err)
			}
			if !res.RBAC || !res.ManagedAccount || rbErr != nil {
				t.Errorf("got %+v, RoleBinding %v; want the fresh account's RBAC", res, rbErr)
			}
		})
	}
}

// TestServiceAccountSubjects: the index holds the accounts a binding names
// exactly as RBAC matches its subjects.
func TestServiceAccountSubjects(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  client.Object
		want []string
	}{
		{"RoleBinding, subject namespaced", roleBinding("a", "x", saSubject("b", "sa")), []string{"b/sa"}},
		{"RoleBinding, subject's namespace the binding's", roleBinding("a", "x", saSubject("", "sa")), []string{"a/sa"}},
		{"ClusterRoleBinding, subject without namespace (matches nothing)", clusterRoleBinding("x", saSubject("", "sa")), nil},
		{"user name of an account", clusterRoleBinding("x", userSubject("system:serviceaccount:a:sa")), []string{"a/sa"}},
		{"other users and groups", clusterRoleBinding("x", userSubject("alice"), userSubject("system:serviceaccount:a"),
			rbacv1.Subject{Kind: rbacv1.GroupKind, Name: "system:serviceaccounts"}), nil},
		{"several", roleBinding("a", "x", saSubject("", "one"), userSubject("alice"), saSubject("c", "two")), []string{"a/one", "c/two"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ServiceAccountSubjects(tc.obj); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestBoundErrorNamesAFew: a denial names at most a few bindings, sorted,
// and counts the rest.
func TestBoundErrorNamesAFew(t *testing.T) {
	var names []string
	for _, n := range []string{"g", "f", "e", "d", "c", "b", "a", "a"} {
		names = append(names, "ClusterRoleBinding "+n)
	}
	err := boundError("ns", "sa", names)
	if len(err.Bindings) != maxBindingsNamed || err.Bindings[0] != "ClusterRoleBinding a" || err.More != 2 || !strings.Contains(err.Error(), "and 2 more") {
		t.Errorf("got %+v: %v", err, err)
	}
}
