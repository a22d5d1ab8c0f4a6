package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
)

const policyNS = "policy"

// testTokenPolicy: in a namespace whose token-projector.io/allowed-audiences
// is vault, a pod with a hand-written projected volume for another audience
// never gets its token: the kubelet's TokenRequest is refused by the chart's
// ValidatingAdmissionPolicy, and the pod's event names the policy; an
// injected pod in the same namespace runs with its vault token (and its
// kube-api-access token, the API server's audiences, which always pass).
func testTokenPolicy(t *testing.T, e *env) {
	e.namespace(t, policyNS, true)
	e.kubectl(t, "annotate", "namespace", policyNS, mutate.AnnotationAllowedAudiences+"=vault")

	injected := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "injected", Annotations: tokenAnnotations(map[string]string{mutate.AnnotationServiceAccount: "policy-app"})},
		Spec:       tokenPodSpec(),
	}
	handmade := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "handmade"},
		Spec:       tokenPodSpec(),
	}
	handmade.Spec.Volumes = []corev1.Volume{{Name: "evil", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "evil", Path: "evil-token"}}},
	}}}}
	handmade.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "evil", MountPath: "/var/run/secrets/tokens", ReadOnly: true}}
	handmade.Spec.Containers[0].Args = []string{"-token=/var/run/secrets/tokens/evil-token"}
	for _, p := range []*corev1.Pod{injected, handmade} {
		if _, err := e.Client.CoreV1().Pods(policyNS).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	const policy = "ValidatingAdmissionPolicy '" + release + "-token-policy'"
	var refusal string
	e.waitFor(t, "an event of pod handmade naming the token policy", 3*time.Minute, func(ctx context.Context) (bool, error) {
		events, err := e.Client.CoreV1().Events(policyNS).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=handmade"})
		if err != nil {
			return false, err
		}
		for _, ev := range events.Items {
			if strings.Contains(ev.Message, policy) {
				refusal = ev.Message
				return true, nil
			}
		}
		return false, nil
	})
	if !strings.Contains(refusal, `TokenRequest audience "evil" is not accepted: namespace policy's token-projector.io/allowed-audiences allows audiences matching vault`) {
		t.Errorf("pod handmade's event %q does not say which annotation refused it", refusal)
	}

	e.kubectl(t, "wait", "-n", policyNS, "--for=condition=Ready", "pod/injected", "--timeout=3m")
	p, err := e.Client.CoreV1().Pods(policyNS).Get(e.ctx, "injected", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.report(p)
	if err != nil {
		t.Fatal(err)
	}
	if claims, err := decodeClaims(r.Token); err != nil || !slices.Equal(claims.Aud, []string{"vault"}) {
		t.Errorf("pod injected: token %v (%s), want one for vault", err, r.TokenError)
	}
	if r.SelfStatus != 201 {
		t.Errorf("pod injected: a vault token for its own account: HTTP %d, want 201 (within the policy)", r.SelfStatus)
	}

	h, err := e.Client.CoreV1().Pods(policyNS).Get(e.ctx, "handmade", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Status.Phase != corev1.PodPending {
		t.Errorf("pod handmade is %s, want Pending: the kubelet must not start it without its volume", h.Status.Phase)
	} else if !t.Failed() {
		summary.tokenPolicy.Store("enforced")
	}
	if err := e.Client.CoreV1().Pods(policyNS).Delete(e.ctx, "handmade", metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
}
