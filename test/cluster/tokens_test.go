package cluster_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/cluster/tokencheck"
	"github.com/token-projector/token-projector/test/testenv"
)

const (
	tokensNS   = "tokens"
	appUID     = 1000
	bystander  = "bystander"
	reportPort = tokencheck.Port
)

// tokenPodSpec runs tokencheck as a non-root user; Ready once it serves
// its report. Its own env entry tokenRefEnv references tokenEnv, which the
// webhook adds: the kubelet expands it only if the webhook's entry comes
// first.
func tokenPodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr(int64(appUID)), RunAsGroup: ptr(int64(appUID)), RunAsNonRoot: ptr(true)},
		Containers: []corev1.Container{{
			Name: "app", Image: checkImage, ImagePullPolicy: corev1.PullNever,
			Args: []string{"-other-account=" + bystander, "-token-env=" + tokenEnv + "," + tokenRefEnv},
			Env:  []corev1.EnvVar{{Name: tokenRefEnv, Value: "$(" + tokenEnv + ")"}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(reportPort)}},
				PeriodSeconds: 1,
			},
		}},
	}
}

// tokenEnv is the variable the pods ask the webhook to set to their vault
// token's file, as a cloud SDK reads AWS_WEB_IDENTITY_TOKEN_FILE;
// tokenRefEnv the container's own variable, set to $(VAULT_TOKEN_FILE).
const (
	tokenEnv    = "VAULT_TOKEN_FILE"
	tokenRefEnv = "VAULT_JWT_PATH"
)

// tokenAnnotations ask for a vault token valid for 2h, and tokenEnv naming
// its file.
func tokenAnnotations(extra map[string]string) map[string]string {
	a := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h", mutate.AnnotationTokenFileEnv: "vault=" + tokenEnv}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// testTokens: an annotated pod naming a new account, and a Deployment
// whose template names another, run; their non-root containers read
// kubelet-written tokens with the requested claims that kube-apiserver
// authenticates for audience vault; and each account may mint tokens for
// itself and for no other.
func testTokens(t *testing.T, e *env) {
	e.namespace(t, tokensNS, true)
	e.kubectl(t, "create", "serviceaccount", bystander, "-n", tokensNS)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reader", Annotations: tokenAnnotations(map[string]string{mutate.AnnotationServiceAccount: "reader"})},
		Spec:       tokenPodSpec(),
	}
	if _, err := e.Client.CoreV1().Pods(tokensNS).Create(e.ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "minter"}
	tmpl := tokenPodSpec()
	tmpl.ServiceAccountName = "minter"
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "minter"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: tokenAnnotations(nil)}, Spec: tmpl},
		},
	}
	if _, err := e.Client.AppsV1().Deployments(tokensNS).Create(e.ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.kubectl(t, "wait", "-n", tokensNS, "--for=condition=Ready", "pod/reader", "--timeout=3m")
	e.kubectl(t, "rollout", "status", "-n", tokensNS, "deployment/minter", "--timeout=3m")

	pods, err := e.Client.CoreV1().Pods(tokensNS).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range pods.Items {
		sa := "reader"
		if strings.HasPrefix(p.Name, "minter-") {
			sa = "minter"
		} else if p.Name != "reader" {
			continue
		}
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s is %s", p.Name, p.Status.Phase)
			continue
		}
		summary.podsRunning.Add(1)
		checked++
		if e.verifyToken(t, &p, sa) {
			summary.tokensVerified.Add(1)
		}
	}
	if checked != 2 {
		t.Errorf("checked %d running pods, want the pod and the Deployment's pod", checked)
	}
}

// verifyToken checks what the pod's container found against the pod and
// kube-apiserver, reporting every mismatch; true if none.
func (e *env) verifyToken(t *testing.T, p *corev1.Pod, sa string) bool {
	t.Helper()
	errs := 0
	fail := func(format string, args ...any) {
		t.Errorf("pod %s: "+format, append([]any{p.Name}, args...)...)
		errs++
	}
	if !testenv.MutatedOnce(p) {
		fail("not injected exactly once: volumes %v", p.Spec.Volumes)
	}
	if p.Spec.ServiceAccountName != sa {
		fail("runs as %q, want %q", p.Spec.ServiceAccountName, sa)
	}
	r, err := e.report(p)
	if err != nil {
		fail("reading its report: %v", err)
		return false
	}
	if r.UID != appUID || r.TokenError != "" || r.Token == "" {
		fail("the container (uid %d) could not read its token: %q", r.UID, r.TokenError)
		return false
	}
	const want = "/var/run/secrets/tokens/vault-token"
	if len(r.Env) != 2 {
		fail("followed %d variables, want %s and %s", len(r.Env), tokenEnv, tokenRefEnv)
	}
	for _, c := range r.Env {
		if c.Value != want || !c.SameToken || c.Error != "" {
			fail("%s is %q (%s), its file the projected token: %v; want %s naming the token's file", c.Name, c.Value, c.Error, c.SameToken, want)
		}
	}
	if r.FileMode != "-rw-------" || r.FileUID != appUID {
		fail("token file mode %s owner %d, want -rw------- owned by %d", r.FileMode, r.FileUID, appUID)
	}
	claims, err := decodeClaims(r.Token)
	if err != nil {
		fail("%v", err)
		return false
	}
	subject := fmt.Sprintf("system:serviceaccount:%s:%s", tokensNS, sa)
	if !slices.Equal(claims.Aud, []string{"vault"}) {
		fail("aud %v, want [vault]", claims.Aud)
	}
	if claims.Exp-claims.Iat != 7200 {
		fail("exp-iat %d, want 7200 (2h)", claims.Exp-claims.Iat)
	}
	if claims.Sub != subject {
		fail("sub %q, want %q", claims.Sub, subject)
	}
	if k := claims.Kubernetes; k.Pod.Name != p.Name || k.Pod.UID != string(p.UID) || k.Namespace != tokensNS || k.ServiceAccount.Name != sa {
		fail("bound to %+v, want pod %s (%s) in %s as %s", k, p.Name, p.UID, tokensNS, sa)
	}
	for _, tc := range []struct {
		audience string
		want     bool
	}{{"vault", true}, {"not-vault", false}} {
		review, err := e.Client.AuthenticationV1().TokenReviews().Create(e.ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: r.Token, Audiences: []string{tc.audience}},
		}, metav1.CreateOptions{})
		if err != nil {
			fail("TokenReview: %v", err)
			continue
		}
		if review.Status.Authenticated != tc.want {
			fail("TokenReview for audience %s: authenticated %v, want %v (%s)", tc.audience, review.Status.Authenticated, tc.want, review.Status.Error)
		}
		if tc.want && review.Status.User.Username != subject {
			fail("TokenReview user %q, want %q", review.Status.User.Username, subject)
		}
	}
	if r.RequestError != "" || r.ServiceAccount != sa {
		fail("TokenRequests from inside the pod as %q: %s", r.ServiceAccount, r.RequestError)
	}
	if r.SelfStatus != http.StatusCreated {
		fail("a token for its own account %s: HTTP %d, want 201", sa, r.SelfStatus)
	}
	if r.OtherStatus != http.StatusForbidden {
		fail("a token for account %s: HTTP %d, want 403", r.OtherAccount, r.OtherStatus)
	}
	return errs == 0
}

// report fetches tokencheck's report from the pod's address, inside the
// cluster's network namespace.
func (e *env) report(p *corev1.Pod) (*tokencheck.Report, error) {
	return e.reportAt(p, reportPort)
}

// reportAt fetches the report of the pod's tokencheck that listens on port.
func (e *env) reportAt(p *corev1.Pod, port int32) (*tokencheck.Report, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return e.Dial(ctx, network, addr)
	}}}
	resp, err := client.Get(fmt.Sprintf("http://%s/", net.JoinHostPort(p.Status.PodIP, fmt.Sprint(port))))
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r tokencheck.Report
	return &r, json.Unmarshal(body, &r)
}

type claims struct {
	Aud        []string
	Sub        string
	Exp, Iat   int64
	Kubernetes struct {
		Namespace      string
		Pod            struct{ Name, UID string }
		ServiceAccount struct{ Name string } `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

// decodeClaims reads a JWT's claims; the TokenReview verifies it.
func decodeClaims(jwt string) (*claims, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("the token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c claims
	return &c, json.Unmarshal(payload, &c)
}

func ptr[T any](v T) *T { return &v }
