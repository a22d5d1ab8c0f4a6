package server

import (
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// asServed adds what kube-apiserver adds to an object, and what the
// transforms must drop or keep.
func asServed(m metav1.ObjectMeta) metav1.ObjectMeta {
	m.UID = types.UID("8f4b7a52-1c3e-4d5f-9a6b-7c8d9e0f1a2b")
	m.ResourceVersion = "4711"
	m.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	m.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}
	m.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "webhook", Operation: metav1.ManagedFieldsOperationUpdate}}
	m.OwnerReferences = []metav1.OwnerReference{{Kind: "Deployment", Name: "x"}}
	return m
}

// kept is what every reader of the caches may read of an object's metadata.
func kept(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp, Labels: m.Labels}
}

func TestTrimRoleKeepsWhatIsRead(t *testing.T) {
	in := rbac.Role("demo", "nginx")
	in.TypeMeta = metav1.TypeMeta{}
	in.ObjectMeta = asServed(in.ObjectMeta)
	want := in.DeepCopy()
	want.ObjectMeta = kept(want.ObjectMeta)

	out, err := trimRole(in.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*rbacv1.Role)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trimmed Role (-want +got):\n%s", diff)
	}
	if reflect.ValueOf(got.Labels).Pointer() != reflect.ValueOf(managedLabels).Pointer() ||
		&got.Rules[0].Verbs[0] != &sharedLists["create"][0] {
		t.Error("the Role does not share the common label set and rule lists")
	}
	again, _ := trimRole(got.DeepCopy())
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("trimming twice differs (-once +twice):\n%s", diff)
	}

	// A Role of ours that was changed keeps what it grants, so that the
	// Ensurer sees the change and refuses it.
	changed := rbac.Role("demo", "nginx")
	changed.Rules[0].Verbs = []string{"create", "get"}
	changed.Rules[0].ResourceNames = []string{"other"}
	out, _ = trimRole(changed.DeepCopy())
	if diff := cmp.Diff(changed.Rules, out.(*rbacv1.Role).Rules); diff != "" {
		t.Errorf("a changed Role's rules were altered (-want +got):\n%s", diff)
	}
}

func TestTrimRoleBindingKeepsWhatIsRead(t *testing.T) {
	in := rbac.RoleBinding("demo", "nginx")
	in.TypeMeta = metav1.TypeMeta{}
	in.ObjectMeta = asServed(in.ObjectMeta)
	in.Labels = map[string]string{rbac.LabelManagedBy: rbac.ManagedBy, "team": "a"}
	want := in.DeepCopy()
	want.ObjectMeta = kept(want.ObjectMeta)

	out, err := trimRoleBinding(in.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, out.(*rbacv1.RoleBinding)); diff != "" {
		t.Errorf("trimmed RoleBinding (-want +got):\n%s", diff)
	}
}

func TestTrimServiceAccount(t *testing.T) {
	ours := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"},
		ObjectMeta: asServed(rbac.ServiceAccount("demo", "nginx").ObjectMeta)}
	ours.Labels["extra"] = "dropped"
	out, _ := trimServiceAccount(ours.DeepCopy())
	got := out.(*metav1.PartialObjectMetadata)
	want := kept(ours.ObjectMeta)
	want.Labels = map[string]string{rbac.LabelManagedBy: rbac.ManagedBy}
	if diff := cmp.Diff(want, got.ObjectMeta); diff != "" || got.TypeMeta != ours.TypeMeta {
		t.Errorf("trimmed ServiceAccount (-want +got):\n%s\ntype %v", diff, got.TypeMeta)
	}
	if !rbac.IsManaged(got) {
		t.Error("our ServiceAccount no longer reads as ours")
	}

	foreign := &metav1.PartialObjectMetadata{ObjectMeta: asServed(metav1.ObjectMeta{Namespace: "demo", Name: "app", Labels: map[string]string{"app": "x"}})}
	out, _ = trimServiceAccount(foreign)
	if got := out.(*metav1.PartialObjectMetadata); got.Labels != nil || rbac.IsManaged(got) || got.UID == "" {
		t.Errorf("foreign ServiceAccount: %+v", got.ObjectMeta)
	}

	// Its owner's label, that lets the webhook ensure its RBAC, is kept.
	labelled := &metav1.PartialObjectMetadata{ObjectMeta: asServed(metav1.ObjectMeta{Namespace: "demo", Name: "app",
		Labels: map[string]string{"app": "x", mutate.LabelInject: mutate.InjectEnabled}})}
	out, _ = trimServiceAccount(labelled)
	if got := out.(*metav1.PartialObjectMetadata); !cmp.Equal(got.Labels, map[string]string{mutate.LabelInject: mutate.InjectEnabled}) || rbac.IsManaged(got) {
		t.Errorf("labelled ServiceAccount kept labels %v", got.Labels)
	}
}

func TestTrimNamespaceKeepsOptIn(t *testing.T) {
	for _, tc := range []struct {
		labels  map[string]string
		optedIn bool
	}{
		{map[string]string{corev1.LabelMetadataName: "a", mutate.LabelInject: mutate.InjectEnabled}, true},
		{map[string]string{corev1.LabelMetadataName: "a", mutate.LabelInject: "disabled"}, false},
		{nil, false},
	} {
		now := metav1.Now()
		ns := &metav1.PartialObjectMetadata{ObjectMeta: asServed(metav1.ObjectMeta{Name: "a", Labels: tc.labels, DeletionTimestamp: &now})}
		out, _ := trimNamespace(ns)
		got := out.(*metav1.PartialObjectMetadata)
		if (got.Labels[mutate.LabelInject] == mutate.InjectEnabled) != tc.optedIn || len(got.Labels) > 1 {
			t.Errorf("labels %v: kept %v", tc.labels, got.Labels)
		}
		if got.DeletionTimestamp == nil || got.UID == "" || got.Annotations != nil || got.ManagedFields != nil {
			t.Errorf("labels %v: metadata %+v", tc.labels, got.ObjectMeta)
		}
	}
}

// TestTrimNamespaceKeepsPolicy: of a namespace's annotations exactly its
// token-projector.io policy is kept (the handler narrows the flags by it);
// the others go, and a namespace with nothing else keeps its own map.
func TestTrimNamespaceKeepsPolicy(t *testing.T) {
	policy := map[string]string{mutate.AnnotationAllowedAudiences: "vault", mutate.AnnotationMaxExpiration: "30m", mutate.AnnotationDefaultExpiration: "20m",
		mutate.AnnotationAllowedServiceAccounts: "app-*"}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		want        map[string]string
	}{
		{name: "none", annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
		{name: "policy and others", annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "shop",
			mutate.AnnotationAllowedAudiences: "vault", mutate.AnnotationMaxExpiration: "30m", mutate.AnnotationDefaultExpiration: "20m",
			mutate.AnnotationAllowedServiceAccounts: "app-*", mutate.AnnotationExpiration: "2h"}, want: policy},
		{name: "one of them", annotations: map[string]string{mutate.AnnotationMaxExpiration: "30m", "team": "shop"},
			want: map[string]string{mutate.AnnotationMaxExpiration: "30m"}},
	} {
		ns := &metav1.PartialObjectMetadata{ObjectMeta: asServed(metav1.ObjectMeta{Name: "shop", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}})}
		ns.Annotations = tc.annotations
		out, _ := trimNamespace(ns)
		if got := out.(*metav1.PartialObjectMetadata).Annotations; !cmp.Equal(got, tc.want) {
			t.Errorf("%s: kept annotations %v, want %v", tc.name, got, tc.want)
		}
	}
	only := maps.Clone(policy)
	ns := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: only}}
	out, _ := trimNamespace(ns)
	if got := out.(*metav1.PartialObjectMetadata).Annotations; reflect.ValueOf(got).Pointer() != reflect.ValueOf(only).Pointer() {
		t.Error("a namespace with only policy annotations does not keep its own map")
	}
}

// A tombstone, or anything else, passes through untouched.
func TestTransformsPassOtherObjects(t *testing.T) {
	other := "tombstone"
	for _, tr := range []func(any) (any, error){trimNamespace, trimServiceAccount, trimRole, trimRoleBinding, trimBinding} {
		if out, err := tr(other); err != nil || out != other {
			t.Errorf("transform changed %v into %v, %v", other, out, err)
		}
	}
}

// TestTrimBindingKeepsTheAccounts: of a binding the Bindings cache keeps
// its name, namespace and resourceVersion, its roleRef and the subjects that name a ServiceAccount
// (the index and the denial read them), nothing else.
func TestTrimBindingKeepsTheAccounts(t *testing.T) {
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: "team-a", Name: "ci-deployer"}
	local := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "web"}
	user := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccount:team-a:ci-deployer"}
	alice := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}
	group := rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts"}
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}
	meta := func(ns string) metav1.ObjectMeta {
		m := asServed(metav1.ObjectMeta{Namespace: ns, Name: "deployers", Labels: map[string]string{"team": "a"}})
		m.Finalizers = []string{"x"}
		return m
	}
	bare := func(ns string) metav1.ObjectMeta {
		m := kept(meta(ns))
		m.Labels, m.UID, m.CreationTimestamp = nil, "", metav1.Time{}
		return m
	}

	rb := &rbacv1.RoleBinding{ObjectMeta: meta("prod"), RoleRef: ref, Subjects: []rbacv1.Subject{alice, sa, group, local}}
	out, _ := trimBinding(rb)
	want := &rbacv1.RoleBinding{ObjectMeta: bare("prod"), RoleRef: ref, Subjects: []rbacv1.Subject{sa, local}}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("trimmed RoleBinding (-want +got):\n%s", diff)
	}

	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: meta(""), RoleRef: ref, Subjects: []rbacv1.Subject{user, local, group}}
	out, _ = trimBinding(crb)
	wantCRB := &rbacv1.ClusterRoleBinding{ObjectMeta: bare(""), RoleRef: ref, Subjects: []rbacv1.Subject{user}}
	if diff := cmp.Diff(wantCRB, out); diff != "" {
		t.Errorf("trimmed ClusterRoleBinding (-want +got):\n%s", diff)
	}

	none := &rbacv1.ClusterRoleBinding{ObjectMeta: meta(""), RoleRef: ref, Subjects: []rbacv1.Subject{alice, group}}
	if out, _ := trimBinding(none); out.(*rbacv1.ClusterRoleBinding).Subjects != nil {
		t.Errorf("a binding of users and groups only kept %v", out.(*rbacv1.ClusterRoleBinding).Subjects)
	}
}
