package mutate

import (
	"errors"
	"path"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/token-projector/token-projector/internal/podvalidation"
)

// maxDenial bounds a denial message: it echoes at most maxQuoted bytes of the
// value, so even a 10 000-character annotation comes back as a short line.
const maxDenial = 1024

// Bits of FuzzParse's present argument: which optional annotations are set.
const (
	hasExpiration = 1 << iota
	hasServiceAccount
	hasMountPath
	hasContainers
	hasTokenFileEnv
)

// FuzzParse drives the annotation parser and the planner with arbitrary
// annotation values on a pod that already has an init container, a sidecar,
// the ServiceAccount plugin's token volume, a volume of its own and
// variables of its own. Properties: no panic; a refusal is an *InvalidError
// whose message names the field, the value and what is accepted; an
// accepted Spec is within every bound; the planned pod passes
// kube-apiserver's volume, mount and env validation, has every variable
// asked for, which the kubelet's expansion makes its token file's path, in
// every container mounting the volume, before the pod's own variables,
// none of them changed; and mutating the result again changes nothing. Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, audience, expiration, serviceAccount, mountPath, containers, specServiceAccount string, present uint8, tokenFileEnv string) {
		ann := map[string]string{AnnotationAudience: audience}
		for _, a := range []struct {
			bit   uint8
			key   string
			value string
		}{
			{hasExpiration, AnnotationExpiration, expiration},
			{hasServiceAccount, AnnotationServiceAccount, serviceAccount},
			{hasMountPath, AnnotationMountPath, mountPath},
			{hasContainers, AnnotationContainers, containers},
			{hasTokenFileEnv, AnnotationTokenFileEnv, tokenFileEnv},
		} {
			if present&a.bit != 0 {
				ann[a.key] = a.value
			}
		}
		pod := fuzzPod(ann, specServiceAccount)
		validBefore := len(podvalidation.Validate(pod)) == 0
		cfg := DefaultConfig()

		spec, _, err := Parse(ann, &pod.Spec, cfg)
		if err != nil {
			checkDenial(t, err)
			return
		}
		checkSpec(t, &spec, &pod.Spec, cfg)

		res, err := Mutate(pod, cfg)
		if err != nil {
			checkDenial(t, err)
			return
		}
		before := pod.DeepCopy()
		res.Changes.Apply(pod)
		if errs := podvalidation.Validate(pod); validBefore && len(errs) > 0 {
			t.Fatalf("kube-apiserver would reject the mutated pod:\n%s", strings.Join(errs, "\n"))
		}
		checkNoSharedMountDirectory(t, pod)
		checkTokenFileEnv(t, &res.Spec, before, pod)
		again, err := Mutate(pod, cfg)
		if err != nil {
			t.Fatalf("second pass denied its own output: %v", err)
		}
		if !again.Changes.Empty() {
			t.Fatalf("second pass wants changes: %+v", again.Changes)
		}
	})
}

func fuzzPod(annotations map[string]string, serviceAccount string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Namespace: "demo", Annotations: annotations},
		Spec: corev1.PodSpec{
			ServiceAccountName: serviceAccount,
			InitContainers:     []corev1.Container{{Name: "setup", Image: "busybox", Env: []corev1.EnvVar{}}},
			Containers: []corev1.Container{
				{Name: "app", Image: "nginx", VolumeMounts: []corev1.VolumeMount{
					{Name: "kube-api-access-x", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
					// A trailing slash: the same directory as /data.
					{Name: "data", MountPath: "/data/"},
				}, Env: []corev1.EnvVar{
					// What vault=VAULT_TOKEN_FILE sets under the default mount path.
					{Name: "VAULT_TOKEN_FILE", Value: DefaultMountPath + "/vault-token"},
					{Name: "SECRET_TOKEN_FILE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}},
				}},
				{Name: "sidecar", Image: "envoy"},
			},
			Volumes: []corev1.Volume{
				{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
				}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
	}
}

// checkNoSharedMountDirectory: kube-apiserver compares mount paths as
// strings, the kubelet mounts directories; two mounts of one container must
// not name the same directory however the paths are spelt.
func checkNoSharedMountDirectory(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		seen := map[string]string{}
		for _, m := range c.VolumeMounts {
			dir := path.Clean(m.MountPath)
			if other, ok := seen[dir]; ok {
				t.Fatalf("container %s mounts %s and %s at one directory %s", c.Name, other, m.Name, dir)
			}
			seen[dir] = m.Name
		}
	}
}

// checkDenial holds a refusal to the contract: a policy violation whose
// message names the field, quotes the value and says what is accepted.
func checkDenial(t *testing.T, err error) {
	t.Helper()
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("refusal is not a policy violation: %v", err)
	}
	msg := err.Error()
	switch {
	case ie.Field == "" || !strings.HasPrefix(msg, ie.Field+": "):
		t.Fatalf("denial does not start with the field: %q", msg)
	case !strings.Contains(msg, quote(ie.Value)+" is not accepted: "):
		t.Fatalf("denial does not quote the value: %q", msg)
	case strings.TrimSpace(ie.Accepted) == "":
		t.Fatalf("denial does not say what is accepted: %q", msg)
	case len(msg) > maxDenial:
		t.Fatalf("denial of %d bytes: %q", len(msg), msg)
	}
}

// checkSpec holds an accepted Spec to every bound DESIGN.md promises.
func checkSpec(t *testing.T, spec *Spec, podSpec *corev1.PodSpec, cfg Config) {
	t.Helper()
	if n := len(spec.Audiences); n == 0 || n > MaxAudiences {
		t.Fatalf("%d audiences accepted", n)
	}
	files := map[string]bool{}
	for _, a := range spec.Audiences {
		switch {
		case a.Name == "" || a.Name != strings.TrimSpace(a.Name) || len(a.Name) > MaxAudienceLength:
			t.Fatalf("audience %q accepted", a.Name)
		case a.File != FileName(a.Name) || files[a.File]:
			t.Fatalf("audience %q: file %q wrong or not unique", a.Name, a.File)
		case len(a.File) > 255 || strings.ContainsAny(a.File, "/\x00") || strings.HasPrefix(a.File, "."):
			t.Fatalf("audience %q: file name %q is not a safe file name", a.Name, a.File)
		}
		files[a.File] = true
	}
	if minS, maxS := int64(MinExpiration.Seconds()), int64(cfg.MaxExpiration.Seconds()); spec.ExpirationSeconds < minS || spec.ExpirationSeconds > maxS {
		t.Fatalf("expiration %ds accepted, outside [%d, %d]", spec.ExpirationSeconds, minS, maxS)
	}
	if p := spec.MountPath; !path.IsAbs(p) || path.Clean(p) != p || p == "/" || len(p) > MaxMountPathLength {
		t.Fatalf("mount path %q accepted", p)
	}
	if sa := spec.ServiceAccount; sa != "" {
		if sa == DefaultServiceAccount || len(sa) > MaxServiceAccountName || len(validation.IsDNS1123Subdomain(sa)) > 0 ||
			len(validation.IsDNS1123Subdomain(sa+RBACNameSuffix)) > 0 {
			t.Fatalf("service account %q accepted", sa)
		}
	}
	all := containerNames(podSpec)
	if len(spec.Containers) == 0 {
		t.Fatalf("no container chosen")
	}
	for _, c := range spec.Containers {
		if !slices.Contains(all, c) {
			t.Fatalf("container %q is not in the pod", c)
		}
	}
	if len(spec.TokenFileEnv) > MaxTokenFileEnvs {
		t.Fatalf("%d token-file variables accepted", len(spec.TokenFileEnv))
	}
	names := map[string]bool{}
	for _, v := range spec.TokenFileEnv {
		i := slices.IndexFunc(spec.Audiences, func(a Audience) bool { return a.Name == v.Audience })
		switch {
		case !cIdentifier(v.Name) || names[v.Name]:
			t.Fatalf("variable %q accepted, not a C identifier or not unique", v.Name)
		case i < 0:
			t.Fatalf("variable %s names audience %q, which the pod does not request", v.Name, v.Audience)
		case v.Path != path.Join(spec.MountPath, spec.Audiences[i].File):
			t.Fatalf("variable %s is %q, not audience %q's token file", v.Name, v.Path, v.Audience)
		}
		names[v.Name] = true
	}
}

// checkTokenFileEnv: in the mutated pod, every container that mounts the
// token volume has each variable asked for, set to its token file, as the
// value the container ends up with (the last entry of that name); no
// variable the pod had is changed or removed, and nothing else gets one.
func checkTokenFileEnv(t *testing.T, spec *Spec, before, after *corev1.Pod) {
	t.Helper()
	was := slices.Concat(before.Spec.InitContainers, before.Spec.Containers)
	for i, c := range slices.Concat(after.Spec.InitContainers, after.Spec.Containers) {
		added := len(c.Env) - len(was[i].Env)
		if added < 0 || !equality.Semantic.DeepEqual(c.Env[added:], was[i].Env) {
			t.Fatalf("container %s: env %+v changed what it had, %+v", c.Name, c.Env, was[i].Env)
		}
		if !slices.Contains(spec.Containers, c.Name) {
			if added != 0 {
				t.Fatalf("container %s does not mount the token volume but got variables: %+v", c.Name, c.Env)
			}
			continue
		}
		env := containerEnv(&c)
		for _, v := range spec.TokenFileEnv {
			if got, ok := env[v.Name]; !ok || got != v.Path {
				t.Fatalf("container %s: the kubelet makes %s %q of env %+v, want %q", c.Name, v.Name, got, c.Env, v.Path)
			}
		}
		if added > len(spec.TokenFileEnv) {
			t.Fatalf("container %s: %d variables added for %d asked", c.Name, added, len(spec.TokenFileEnv))
		}
	}
}
