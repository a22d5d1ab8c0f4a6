package cluster_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	// reviewerNS and reviewer are the account docs/integrations.md creates.
	reviewerNS = "token-reviewers"
	reviewer   = "token-reviewer"
	// tokenCacheTTL is how long kube-apiserver keeps a successful token
	// authentication (TokenSuccessCacheTTL); refusal after the pod is gone
	// may take that long, and a little more for the poll.
	tokenCacheTTL = 10 * time.Second
)

// documentedReviewer is the YAML block docs/integrations.md marks as the one
// test/cluster applies: the reviewer account and its binding.
func documentedReviewer(t *testing.T, root string) []byte {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(root, "docs/integrations.md"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- test/cluster applies the next block"
	_, after, ok := bytes.Cut(doc, []byte(marker))
	if !ok {
		t.Fatalf("docs/integrations.md has no %q", marker)
	}
	_, block, ok := bytes.Cut(after, []byte("```yaml\n"))
	if !ok {
		t.Fatal("docs/integrations.md: no yaml block after the marker")
	}
	block, _, ok = bytes.Cut(block, []byte("```"))
	if !ok {
		t.Fatal("docs/integrations.md: the reviewer's yaml block does not end")
	}
	return block
}

// testVerifier: a verifier set up as docs/integrations.md says, with the
// reviewer account its YAML creates and nothing else, reviews a running
// pod's token through TokenReview, authenticated as that reviewer: accepted
// for the pod's audience with the account and the bound pod, refused for
// another audience, and refused once the pod is gone (after kube-apiserver's
// cache of successful authentications expires). An account without the
// binding may not review at all.
func testVerifier(t *testing.T, e *env) {
	manifest := filepath.Join(t.TempDir(), "reviewer.yaml")
	if err := os.WriteFile(manifest, documentedReviewer(t, e.root), 0o600); err != nil {
		t.Fatal(err)
	}
	e.kubectl(t, "apply", "-f", manifest)
	e.kubectl(t, "create", "serviceaccount", "not-a-reviewer", "-n", reviewerNS)

	pod, err := e.Client.CoreV1().Pods(tokensNS).Get(e.ctx, "reader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.report(pod)
	if err != nil || r.Token == "" {
		t.Fatalf("the pod's token: %v (%s)", err, r.TokenError)
	}
	asReviewer := e.clientAs(t, reviewer)
	review := func(c kubernetes.Interface, audience string) (*authenticationv1.TokenReview, error) {
		return c.AuthenticationV1().TokenReviews().Create(e.ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: r.Token, Audiences: []string{audience}},
		}, metav1.CreateOptions{})
	}

	got, err := review(asReviewer, "vault")
	if err != nil {
		t.Fatalf("TokenReview as the documented reviewer: %v", err)
	}
	s := got.Status
	wantUser := "system:serviceaccount:" + tokensNS + ":reader"
	if !s.Authenticated || !slices.Contains(s.Audiences, "vault") || s.User.Username != wantUser ||
		!slices.Equal(s.User.Extra["authentication.kubernetes.io/pod-name"], authenticationv1.ExtraValue{pod.Name}) ||
		!slices.Equal(s.User.Extra["authentication.kubernetes.io/pod-uid"], authenticationv1.ExtraValue{string(pod.UID)}) {
		t.Errorf("the pod's token for audience vault: %+v; want authenticated as %s, audience vault, bound to pod %s (%s)", s, wantUser, pod.Name, pod.UID)
	}
	summary.reviewsChecked.Add(1)
	if got, err := review(asReviewer, "not-vault"); err != nil || got.Status.Authenticated {
		t.Errorf("the pod's token for audience not-vault: %+v, %v; want refused", got.Status, err)
	}
	summary.reviewsChecked.Add(1)
	if _, err := review(e.clientAs(t, "not-a-reviewer"), "vault"); !apierrors.IsForbidden(err) {
		t.Errorf("TokenReview as an account without the documented binding: %v, want Forbidden", err)
	}

	if err := e.Client.CoreV1().Pods(tokensNS).Delete(e.ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the pod to be gone", 2*time.Minute, func(ctx context.Context) (bool, error) {
		_, err := e.Client.CoreV1().Pods(tokensNS).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	gone := time.Now()
	var refusedAfter time.Duration
	e.waitFor(t, "the deleted pod's token to be refused", time.Minute, func(context.Context) (bool, error) {
		got, err := review(asReviewer, "vault")
		if err != nil || got.Status.Authenticated {
			return false, err
		}
		refusedAfter = time.Since(gone)
		return true, nil
	})
	t.Logf("verifier: the deleted pod's token was refused %v after the pod was gone", refusedAfter.Round(100*time.Millisecond))
	if limit := tokenCacheTTL + 10*time.Second; refusedAfter > limit {
		t.Errorf("the deleted pod's token was accepted for %v, longer than kube-apiserver's %v cache of successful authentications (limit %v)", refusedAfter, tokenCacheTTL, limit)
	}
	summary.reviewsChecked.Add(1)
}

// clientAs is a client authenticated with a token of the account sa in
// reviewerNS, and no other credential.
func (e *env) clientAs(t *testing.T, sa string) kubernetes.Interface {
	t.Helper()
	tr, err := e.Client.CoreV1().ServiceAccounts(reviewerNS).CreateToken(e.ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for %s/%s: %v", reviewerNS, sa, err)
	}
	cfg := rest.AnonymousClientConfig(e.Config)
	cfg.BearerToken = tr.Status.Token
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
