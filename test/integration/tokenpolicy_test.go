package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// recordedAPIAudiences waits until the webhook has recorded the API
// server's audiences in the token policy's ConfigMap, and checks them
// against those kube-apiserver fills in for an admin's token requested
// without any.
func recordedAPIAudiences(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var recorded string
	testenv.WaitFor(t, "the webhook records the API server's audiences", 30*time.Second, func() bool {
		cm := &corev1.ConfigMap{}
		if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: testenv.ReleaseNamespace, Name: tokenPolicyName}, cm); err != nil {
			t.Fatal(err)
		}
		recorded = cm.Data["apiAudiences"]
		return recorded != ""
	})
	cs := kubernetes.NewForConfigOrDie(env.Config)
	tr, err := cs.CoreV1().ServiceAccounts(testenv.ReleaseNamespace).CreateToken(ctx, "token-projector", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(tr.Spec.Audiences, ","); recorded != want {
		t.Fatalf("recorded API audiences %q, kube-apiserver fills in %q", recorded, want)
	}
	return tr.Spec.Audiences
}

// managedAccount has the webhook create the account app for a pod of ns,
// with its <sa>-create-token Role and RoleBinding, and returns a client
// that authenticates as that account (a token the admin requests for it,
// for the API server's audiences).
func managedAccount(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	p := pod(ns, "minter", map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: "app"})
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(env.Config)
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the admin's token for app (API audiences): %v", err)
	}
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tr.Status.Token
	return kubernetes.NewForConfigOrDie(cfg)
}

// TestTokenPolicy: the ValidatingAdmissionPolicy of config/tokenpolicy holds
// a namespace's allowed-audiences and max-expiration at the token API. An
// account the webhook manages, authenticated as itself, may request tokens
// within its namespace's policy and is refused outside it, with a message
// naming the namespace annotation; the API server's own audiences pass
// whatever the policy says; a namespace without the annotations is not
// affected; a malformed annotation refuses all but the API audiences.
func TestTokenPolicy(t *testing.T) {
	ctx := context.Background()
	apiAudiences := recordedAPIAudiences(t)
	type request struct {
		name      string
		audiences []string
		seconds   int64
		refusal   string // a part of the refusal; empty: allowed
	}
	const policyRefusal = "ValidatingAdmissionPolicy '" + tokenPolicyName + "' with binding '" + tokenPolicyName + "' denied request: "
	run := func(t *testing.T, ns string, requests []request) {
		t.Helper()
		app := managedAccount(t, ns)
		create := func(r request) error {
			tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: r.audiences, ExpirationSeconds: &r.seconds}}
			_, err := app.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", tr, metav1.CreateOptions{})
			return err
		}
		// kube-apiserver's policy plugin learns the policy, its binding and
		// the namespace from informers: wait until it refuses the first
		// request it must refuse.
		for _, r := range requests {
			if r.refusal != "" {
				testenv.WaitFor(t, "the policy refuses "+r.name, 30*time.Second, func() bool { return create(r) != nil })
				break
			}
		}
		for _, r := range requests {
			err := create(r)
			switch {
			case r.refusal == "" && err != nil:
				t.Errorf("%s: refused: %v", r.name, err)
			case r.refusal != "" && err == nil:
				t.Errorf("%s: allowed, want refused with %q", r.name, r.refusal)
			case r.refusal != "" && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), policyRefusal) || !strings.Contains(err.Error(), r.refusal)):
				t.Errorf("%s: %v\nwant Forbidden by the policy, with %q", r.name, err, r.refusal)
			}
		}
	}

	t.Run("annotated", func(t *testing.T) {
		ns := policyNamespace(t, map[string]string{
			mutate.AnnotationAllowedAudiences: "vault, *.example.com", mutate.AnnotationMaxExpiration: "1h",
		})
		audienceRefusal := `TokenRequest audience "evil.example.org" is not accepted: namespace ` + ns +
			`'s token-projector.io/allowed-audiences allows audiences matching vault, *.example.com (path.Match globs), besides the API server's own`
		lifetimeRefusal := "TokenRequest expirationSeconds 7200 is not accepted: namespace " + ns +
			`'s token-projector.io/max-expiration "1h" allows at most 3600 seconds for audiences other than the API server's own`
		run(t, ns, []request{
			{name: "allowed audience within the maximum", audiences: []string{"vault"}, seconds: 3600},
			{name: "allowed glob", audiences: []string{"sts.example.com"}, seconds: 600},
			{name: "audience outside the globs", audiences: []string{"evil.example.org"}, seconds: 600, refusal: audienceRefusal},
			{name: "'*' does not cross '/'", audiences: []string{"https://evil.org/.example.com"}, seconds: 600, refusal: "token-projector.io/allowed-audiences"},
			{name: "lifetime over the maximum", audiences: []string{"vault"}, seconds: 7200, refusal: lifetimeRefusal},
			{name: "an allowed and a refused audience", audiences: []string{"vault", "evil.example.org"}, seconds: 600, refusal: audienceRefusal},
			{name: "the API audiences, by default", seconds: 7200},
			{name: "the API audiences, named", audiences: apiAudiences, seconds: 7200},
			{name: "the API audiences and an allowed one", audiences: append([]string{"vault"}, apiAudiences...), seconds: 3600},
			{name: "the API audiences and a refused one", audiences: append(slices.Clone(apiAudiences), "evil.example.org"), seconds: 600, refusal: audienceRefusal},
		})
	})
	t.Run("not annotated", func(t *testing.T) {
		ns := namespace(t, true)
		run(t, ns, []request{
			{name: "any audience, any lifetime", audiences: []string{"evil.example.org"}, seconds: 7200},
		})
	})
	t.Run("malformed", func(t *testing.T) {
		ns := policyNamespace(t, map[string]string{mutate.AnnotationMaxExpiration: "1h"})
		// The account first: the webhook denies pods of a malformed policy.
		app := managedAccount(t, ns)
		tr := func(auds ...string) *authenticationv1.TokenRequest {
			return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: auds, ExpirationSeconds: new(int64(600))}}
		}
		// kube-apiserver reports the first validation that fails: one
		// malformed annotation at a time. Its policy plugin reads
		// namespaces from an informer: wait until it sees each change.
		for _, step := range []struct{ key, value, want string }{
			{mutate.AnnotationMaxExpiration, "1d", `namespace ` + ns + `'s token-projector.io/max-expiration "1d" is malformed`},
			{mutate.AnnotationAllowedAudiences, "vault,[a-", `namespace ` + ns + `'s token-projector.io/allowed-audiences "vault,[a-" is malformed`},
		} {
			var n corev1.Namespace
			if err := env.Admin.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
				t.Fatal(err)
			}
			n.Annotations[step.key] = step.value
			if err := env.Admin.Update(ctx, &n); err != nil {
				t.Fatal(err)
			}
			var err error
			testenv.WaitFor(t, "the policy refuses "+step.key+" "+step.value, 30*time.Second, func() bool {
				_, err = app.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", tr("vault"), metav1.CreateOptions{})
				return err != nil && strings.Contains(err.Error(), step.want)
			})
		}
		if _, err := app.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", tr(), metav1.CreateOptions{}); err != nil {
			t.Errorf("the API audiences under a malformed policy: %v", err)
		}
	})
}
