package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// existingAccount creates a ServiceAccount as its owner would, with labels,
// and returns it as stored.
func existingAccount(t *testing.T, ns, name string, labels map[string]string) *corev1.ServiceAccount {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: map[string]string{"owner": "team-a"}}}
	if err := env.Admin.Create(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	return sa
}

// assertUnchanged checks the account is exactly as its owner left it.
func assertUnchanged(t *testing.T, want *corev1.ServiceAccount) {
	t.Helper()
	var got corev1.ServiceAccount
	if err := env.Admin.Get(context.Background(), client.ObjectKeyFromObject(want), &got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != want.ResourceVersion || !cmp.Equal(got.Labels, want.Labels) || !cmp.Equal(got.Annotations, want.Annotations) {
		t.Errorf("the webhook changed ServiceAccount %s/%s: labels %v annotations %v (resourceVersion %s, was %s)",
			want.Namespace, want.Name, got.Labels, got.Annotations, got.ResourceVersion, want.ResourceVersion)
	}
}

func assertNoRBAC(t *testing.T, ns, sa string) {
	t.Helper()
	for _, obj := range []client.Object{&rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		if err := env.Admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: rbac.Name(sa)}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s: want NotFound, got %v", obj, rbac.Name(sa), err)
		}
	}
}

func status(t *testing.T, p *corev1.Pod) mutate.Status {
	t.Helper()
	var st mutate.Status
	if err := json.Unmarshal([]byte(p.Annotations[mutate.AnnotationStatus]), &st); err != nil {
		t.Fatalf("status annotation %q: %v", p.Annotations[mutate.AnnotationStatus], err)
	}
	return st
}

// TestExistingUnlabelledAccountGetsNoRBAC: a pod naming an existing account
// that the webhook did not create and that its owner did not label gets its
// token volume and a warning naming the label; no Role or RoleBinding is
// created and the account is not touched, whether the pod names it in the
// annotation or in spec.serviceAccountName, and a workload naming it is
// admitted the same way.
func TestExistingUnlabelledAccountGetsNoRBAC(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	sa := existingAccount(t, ns, "privileged", map[string]string{"team": "a"})
	c, w := env.AdminWithWarnings(t)

	byAnnotation := pod(ns, "by-annotation", classic("privileged"))
	bySpec := pod(ns, "by-spec", map[string]string{mutate.AnnotationAudience: "vault"})
	bySpec.Spec.ServiceAccountName = "privileged"
	for _, p := range []*corev1.Pod{byAnnotation, bySpec} {
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if len(tokenVolumes(p)) != 1 || p.Spec.ServiceAccountName != "privileged" {
			t.Errorf("%s: volumes %+v, account %q", p.Name, p.Spec.Volumes, p.Spec.ServiceAccountName)
		}
		if st := status(t, p); st.RBAC || st.ManagedServiceAccount || st.ServiceAccount != "privileged" {
			t.Errorf("%s: status %+v does not say that no RBAC was ensured", p.Name, st)
		}
		warned := strings.Join(w.Take(), "\n")
		for _, want := range []string{"ServiceAccount " + ns + "/privileged exists and is not labelled token-projector.io/inject=enabled", "no token RBAC ensured"} {
			if !strings.Contains(warned, want) {
				t.Errorf("%s: warnings %q lack %q", p.Name, warned, want)
			}
		}
	}

	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uses-privileged"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template("privileged", map[string]string{mutate.AnnotationAudience: "vault"}),
		},
	}
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if warned := strings.Join(w.Take(), "\n"); !strings.Contains(warned, "not labelled token-projector.io/inject=enabled") {
		t.Errorf("workload warnings %q do not name the label", warned)
	}

	// A dry run says the same and writes nothing.
	dry := pod(ns, "dry", classic("privileged"))
	if err := c.Create(ctx, dry, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if st := status(t, dry); st.RBAC {
		t.Errorf("dry run: status %+v", st)
	}
	assertNoRBAC(t, ns, "privileged")
	assertUnchanged(t, sa)
}

// TestLabelledAccountGetsRBAC: an existing account its owner labelled
// token-projector.io/inject=enabled gets its Role and RoleBinding; the
// account itself is left as it was, and the pod's status says RBAC was
// ensured for an account the webhook did not create.
func TestLabelledAccountGetsRBAC(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	sa := existingAccount(t, ns, "opted", map[string]string{mutate.LabelInject: mutate.InjectEnabled})
	c, w := env.AdminWithWarnings(t)
	p := pod(ns, "web", classic("opted"))
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if st := status(t, p); !st.RBAC || st.ManagedServiceAccount {
		t.Errorf("status %+v: want rbac for an account the webhook did not create", st)
	}
	if warned := strings.Join(w.Take(), "\n"); strings.Contains(warned, "not labelled") {
		t.Errorf("a labelled account was warned about: %q", warned)
	}
	assertIdentity(t, ns, "opted")
	assertUnchanged(t, sa)

	// A new account is the webhook's: its status says so.
	fresh := pod(ns, "fresh", classic("fresh"))
	if err := env.Admin.Create(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if st := status(t, fresh); !st.RBAC || !st.ManagedServiceAccount {
		t.Errorf("new account: status %+v, want rbac for a managed account", st)
	}
}

// TestLabelTakenOffIsSeen: the warm path answers a known account from a
// memo that its informers' events keep (rbac.Ensurer); once the owner takes
// the label off and the cache has shown it, pods get no RBAC, and once it is
// back they get it again. A memo its events did not clear would keep the
// first answer.
func TestLabelTakenOffIsSeen(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	existingAccount(t, ns, "opted", map[string]string{mutate.LabelInject: mutate.InjectEnabled})
	admitted := 0
	rbacFor := func(ctx context.Context) (bool, error) {
		admitted++
		p := pod(ns, fmt.Sprintf("web-%d", admitted), classic("opted"))
		if err := env.Admin.Create(ctx, p); err != nil {
			return false, err
		}
		return status(t, p).RBAC, nil
	}
	relabel := func(labels map[string]string) {
		t.Helper()
		var sa corev1.ServiceAccount
		if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "opted"}, &sa); err != nil {
			t.Fatal(err)
		}
		sa.Labels = labels
		if err := env.Admin.Update(ctx, &sa); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the second from the memo
		if got, err := rbacFor(ctx); err != nil || !got {
			t.Fatalf("labelled account: rbac %v, %v", got, err)
		}
	}
	relabel(nil)
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := rbacFor(ctx)
		return !got, err
	}); err != nil {
		t.Fatalf("the label taken off was never seen: %v", err)
	}
	relabel(map[string]string{mutate.LabelInject: mutate.InjectEnabled})
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, rbacFor); err != nil {
		t.Fatalf("the label put back was never seen: %v", err)
	}
}
