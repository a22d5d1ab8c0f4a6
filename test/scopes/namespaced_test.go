// Package scopes runs the webhook in the chart's namespaced RBAC scope: its
// user holds the shipped ClusterRoles token-projector and token-projector-gc
// only through RoleBindings in the listed namespaces (and
// token-projector-namespaces cluster-wide), and runs with --namespaces and
// --gc-ttl. The cluster scope is what test/integration and test/reconcile
// run with.
package scopes

import (
	"context"
	"os"
	"strings"
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

const ttl = 3 * time.Second

// grace is the webhook's --gc-grace here: between the RoleBinding's delete
// and the rest's.
const grace = 2 * time.Second

// served are the namespaces of the scope; outside is opted in by its label
// but not served.
var (
	served  = []string{"team-a", "team-b"}
	outside = "team-c"
	env     *testenv.Env
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Suite{
		Name: "scopes", LogLevel: zapcore.ErrorLevel, Env: &env,
		Options: testenv.Options{SkipRBACBinding: true},
		Setup:   func(ctx context.Context, _ *testenv.Env) error { return bindNamespaced(ctx) },
		Webhook: func(o *server.Options) {
			o.Namespaces = served
			o.GCTTL, o.GCGrace = ttl, grace
		},
	}.Main(m))
}

// bindNamespaced binds the shipped ClusterRoles as the chart's namespaced
// scope does: reading Namespaces cluster-wide, everything else by a
// RoleBinding in each served namespace.
func bindNamespaced(ctx context.Context) error {
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "token-projector", Namespace: testenv.ReleaseNamespace}}
	ref := func(name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
	}
	if err := env.Admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "token-projector-namespaces"}, RoleRef: ref("token-projector-namespaces"), Subjects: subject,
	}); err != nil {
		return err
	}
	for _, ns := range append([]string{outside}, served...) {
		if err := env.CreateNamespace(ctx, ns, testenv.OptedIn()); err != nil {
			return err
		}
	}
	for _, ns := range served {
		for _, role := range []string{"token-projector", "token-projector-gc"} {
			if err := env.Admin.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role}, RoleRef: ref(role), Subjects: subject,
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

func pod(ns, sa string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "web-", Annotations: map[string]string{mutate.AnnotationAudience: "vault"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
	if sa != "" {
		p.Annotations[mutate.AnnotationServiceAccount] = sa
	}
	return p
}

// TestServedNamespacesWork: in each listed namespace the RoleBindings are
// enough for everything the webhook does: ensure on admission, restore a
// deleted object, collect an unused identity.
func TestServedNamespacesWork(t *testing.T) {
	ctx := context.Background()
	for _, ns := range served {
		t.Run(ns, func(t *testing.T) {
			p := pod(ns, "app")
			if err := env.Admin.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			if p.Spec.ServiceAccountName != "app" {
				t.Errorf("serviceAccountName = %q, want app", p.Spec.ServiceAccountName)
			}
			for _, o := range testenv.Identity(ns, "app") {
				if !env.Exists(t, o) || !rbac.IsManaged(o) {
					t.Fatalf("%T %s/%s missing or not managed", o, ns, o.GetName())
				}
			}
			if err := env.Admin.Delete(ctx, testenv.Identity(ns, "app")[1]); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, "the deleted Role is restored", 30*time.Second, func() bool { return env.Exists(t, testenv.Identity(ns, "app")[1]) })

			if err := env.Admin.Delete(ctx, p); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, "the unused identity is collected", ttl+grace+30*time.Second, func() bool {
				for _, o := range testenv.Identity(ns, "app") {
					if env.Exists(t, o) {
						return false
					}
				}
				return true
			})
		})
	}
}

// TestOutsideTheListIsAClearError: a namespace that carries the opt-in label
// but is not served gets a denial that names it and the served namespaces,
// for pods with and without an account: no pod half-injected, nothing
// created there.
func TestOutsideTheListIsAClearError(t *testing.T) {
	ctx := context.Background()
	for _, sa := range []string{"app", ""} {
		p := pod(outside, sa)
		err := env.Admin.Create(ctx, p)
		if err == nil {
			t.Fatalf("pod with account %q admitted in %s, which is not served: %+v", sa, outside, p.Spec)
		}
		for _, want := range []string{outside, strings.Join(served, ", "), "not served"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err.Error(), want)
			}
		}
	}
	for _, o := range testenv.Identity(outside, "app") {
		if env.Exists(t, o) {
			t.Errorf("%T %s/%s was created outside the served namespaces", o, outside, o.GetName())
		}
	}
	var pods corev1.PodList
	if err := env.Admin.List(ctx, &pods, client.InNamespace(outside)); err != nil || len(pods.Items) != 0 {
		t.Errorf("pods in %s: %d, %v", outside, len(pods.Items), err)
	}
}
