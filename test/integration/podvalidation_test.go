package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/internal/podvalidation"
)

// TestPodValidationAgreesWithAPIServer keeps internal/podvalidation (the
// fuzz tests' stand-in for kube-apiserver's pod volume, mount and variable
// name checks)
// honest: for pods that break each rule it re-creates, and pods just inside
// them, it must accept exactly what kube-apiserver accepts. The pods are
// dry-run in a namespace that is not opted in, so the webhook stays out.
func TestPodValidationAgreesWithAPIServer(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, false)
	token := func(path string, exp *int64) corev1.VolumeProjection {
		return corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", Path: path, ExpirationSeconds: exp}}
	}
	projected := func(name string, mode *int32, sources ...corev1.VolumeProjection) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources, DefaultMode: mode}}}
	}
	mounted := func(vols []corev1.Volume, mounts ...corev1.VolumeMount) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Volumes = vols
			p.Spec.Containers[0].VolumeMounts = mounts
		}
	}
	withEnv := func(names ...string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			for _, n := range names {
				p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: n, Value: "/x"})
			}
		}
	}
	tok := projected("tok", nil, token("t", ptr(int64(3600))))
	empty := corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}

	for _, tc := range []struct {
		name string
		edit func(*corev1.Pod)
	}{
		{"plain pod", func(*corev1.Pod) {}},
		{"token volume mounted", mounted([]corev1.Volume{tok}, corev1.VolumeMount{Name: "tok", MountPath: "/tokens", ReadOnly: true})},
		{"volume name not a DNS label", mounted([]corev1.Volume{projected("Tok_1", nil, token("t", nil))})},
		{"volume name of 64 characters", mounted([]corev1.Volume{projected(strings.Repeat("a", 64), nil, token("t", nil))})},
		{"duplicate volume name", mounted([]corev1.Volume{tok, tok})},
		{"volume without a source", mounted([]corev1.Volume{{Name: "bare"}})},
		{"volume with two sources", mounted([]corev1.Volume{{Name: "two", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{}, Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{token("t", nil)}},
		}}})},
		{"expiration 599", mounted([]corev1.Volume{projected("tok", nil, token("t", ptr(int64(599))))})},
		{"expiration 600", mounted([]corev1.Volume{projected("tok", nil, token("t", ptr(int64(600))))})},
		{"expiration 2^32", mounted([]corev1.Volume{projected("tok", nil, token("t", ptr(int64(1<<32))))})},
		{"expiration 2^32+1", mounted([]corev1.Volume{projected("tok", nil, token("t", ptr(int64(1<<32+1))))})},
		{"expiration unset", mounted([]corev1.Volume{projected("tok", nil, token("t", nil))})},
		{"token path absolute", mounted([]corev1.Volume{projected("tok", nil, token("/t", nil))})},
		{"token path with ..", mounted([]corev1.Volume{projected("tok", nil, token("a/../t", nil))})},
		{"token path starting with ..", mounted([]corev1.Volume{projected("tok", nil, token("..t", nil))})},
		{"token path empty", mounted([]corev1.Volume{projected("tok", nil, token("", nil))})},
		{"token path nested", mounted([]corev1.Volume{projected("tok", nil, token("a/b-token", nil))})},
		{"two tokens, one path", mounted([]corev1.Volume{projected("tok", nil, token("t", nil), token("t", nil))})},
		{"default mode 0777", mounted([]corev1.Volume{projected("tok", ptr(int32(0o777)), token("t", nil))})},
		{"default mode 01000", mounted([]corev1.Volume{projected("tok", ptr(int32(0o1000)), token("t", nil))})},
		{"two kinds in one projection", mounted([]corev1.Volume{projected("tok", nil, corev1.VolumeProjection{
			ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "t"},
			ConfigMap:           &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}},
		})})},
		{"mount of a missing volume", mounted([]corev1.Volume{tok}, corev1.VolumeMount{Name: "ghost", MountPath: "/g"})},
		{"mount of an invalid volume", mounted([]corev1.Volume{projected("tok", nil, token("/abs", nil))}, corev1.VolumeMount{Name: "tok", MountPath: "/t"})},
		{"mount path empty", mounted([]corev1.Volume{tok}, corev1.VolumeMount{Name: "tok"})},
		{"mount path twice", mounted([]corev1.Volume{tok, empty}, corev1.VolumeMount{Name: "tok", MountPath: "/x"}, corev1.VolumeMount{Name: "data", MountPath: "/x"})},
		{"two mounts of one volume", mounted([]corev1.Volume{tok}, corev1.VolumeMount{Name: "tok", MountPath: "/x"}, corev1.VolumeMount{Name: "tok", MountPath: "/y"})},
		{"mount path relative", mounted([]corev1.Volume{tok}, corev1.VolumeMount{Name: "tok", MountPath: "relative"})},
		{"service account default", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "default" }},
		{"service account invalid", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "Not_Valid" }},
		{"env names kube-apiserver accepts", withEnv("VAULT_TOKEN_FILE", "1st", "my.env-name", "with space", "semi;colon", "VAULT_TOKEN_FILE")},
		{"env name empty", withEnv("")},
		{"env name with =", withEnv("A=B")},
		{"env name not ASCII", withEnv("TOKEN_FILÉ")},
		{"env name with a tab", withEnv("A\tB")},
		{"annotations at the limit", func(p *corev1.Pod) { p.Annotations = map[string]string{"a": strings.Repeat("x", 256<<10-1)} }},
		{"annotations over the limit", func(p *corev1.Pod) { p.Annotations = map[string]string{"a": strings.Repeat("x", 256<<10)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
			}
			tc.edit(p)
			helper := podvalidation.Validate(p.DeepCopy())
			apiErr := env.Admin.Create(ctx, p, client.DryRunAll)
			if (len(helper) == 0) != (apiErr == nil) {
				t.Errorf("podvalidation says %q, kube-apiserver says %v", helper, apiErr)
			}
		})
	}
}
