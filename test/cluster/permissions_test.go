package cluster_test

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/token-projector/token-projector/test/cluster/tokencheck"
)

// testTokenFilePermissions: the kubelet writes a projected token 0600 owned
// by the pod's user only when every container runs as one explicit user
// (testTokens' pods); with containers of two users it writes it 0644, owned
// by root, readable by both, and with an fsGroup 0640, group fsGroup, which
// every container's processes are in. docs/install.md states this rule.
func testTokenFilePermissions(t *testing.T, e *env) {
	const otherUID, fsGroup, otherPort = 1001, 2000, tokencheck.Port + 1
	twoUsers := func(name string, withFSGroup bool) *corev1.Pod {
		spec := tokenPodSpec()
		if withFSGroup {
			spec.SecurityContext.FSGroup = ptr(int64(fsGroup))
		}
		other := spec.Containers[0]
		other.Name = "other"
		other.Args = append(slices.Clone(other.Args), fmt.Sprintf("-listen=:%d", otherPort))
		other.ReadinessProbe = other.ReadinessProbe.DeepCopy()
		other.ReadinessProbe.HTTPGet.Port = intstr.FromInt32(otherPort)
		other.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr(int64(otherUID))}
		spec.Containers = append(spec.Containers, other)
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: tokenAnnotations(nil)}, Spec: spec}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		mode string
	}{
		{twoUsers("two-users", false), "-rw-r--r--"},
		{twoUsers("two-users-fsgroup", true), "-rw-r-----"},
	} {
		if _, err := e.Client.CoreV1().Pods(tokensNS).Create(e.ctx, tc.pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.kubectl(t, "wait", "-n", tokensNS, "--for=condition=Ready", "pod/"+tc.pod.Name, "--timeout=3m")
		p, err := e.Client.CoreV1().Pods(tokensNS).Get(e.ctx, tc.pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			port int32
			uid  int
		}{{reportPort, appUID}, {otherPort, otherUID}} {
			r, err := e.reportAt(p, c.port)
			if err != nil {
				t.Fatal(err)
			}
			if r.UID != c.uid || r.TokenError != "" || r.Token == "" || r.FileMode != tc.mode || r.FileUID != 0 {
				t.Errorf("pod %s, container of uid %d (%d): token read error %q, file %s owned by %d; want it read, %s owned by root",
					p.Name, c.uid, r.UID, r.TokenError, r.FileMode, r.FileUID, tc.mode)
			}
		}
	}
}
