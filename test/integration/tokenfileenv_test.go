package integration

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// The token files of tokenFileEnvAnnotations' audiences under the default mount path.
const (
	vaultFile = mutate.DefaultMountPath + "/vault-token"
	awsFile   = mutate.DefaultMountPath + "/sts.amazonaws.com-token"
)

// tokenFileEnvAnnotations ask for a Vault and an AWS token, each named by
// a variable, for the account sa.
func tokenFileEnvAnnotations(sa string) map[string]string {
	return map[string]string{
		mutate.AnnotationAudience:       "vault,sts.amazonaws.com",
		mutate.AnnotationServiceAccount: sa,
		mutate.AnnotationTokenFileEnv:   "vault=VAULT_TOKEN_FILE, sts.amazonaws.com=AWS_WEB_IDENTITY_TOKEN_FILE",
	}
}

// conflictDenial is the denial of a container "app" that sets
// VAULT_TOKEN_FILE to "/x" itself.
const conflictDenial = `token-projector.io/token-file-env: "vault=VAULT_TOKEN_FILE" is not accepted: container "app" already sets VAULT_TOKEN_FILE to "/x" ` +
	`(this annotation would set it to "/var/run/secrets/tokens/vault-token"); remove it from the container or name another variable`

// envOf is a container's env as name=value lines, valueFrom shown as such.
func envOf(c corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = "<valueFrom>"
		}
		out = append(out, e.Name+"="+v)
	}
	return out
}

// TestTokenFileEnvPod creates, through the API server, a pod asking for two
// token-file variables with an init container, a native sidecar, the app
// (which sets a variable of its own) and a container left out of the
// allow-list: the variables go exactly to the containers that mount the
// tokens, before what they had (so that the app's own entries may
// reference them as $(VAULT_TOKEN_FILE)); a pod re-created from the result
// gets nothing twice.
func TestTokenFileEnvPod(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	ann := tokenFileEnvAnnotations("env-pod")
	ann[mutate.AnnotationContainers] = "fetch,agent,app"
	always := corev1.ContainerRestartPolicyAlways
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "env", Annotations: ann},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{
				{Name: "fetch", Image: "busybox:1.36"},
				{Name: "agent", Image: "vault:1.18", RestartPolicy: &always},
			},
			Containers: []corev1.Container{
				{Name: "app", Image: "nginx:1.27", Env: []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::123456789012:role/app"}}},
				{Name: "metrics", Image: "exporter:1.0"},
			},
		},
	}
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	ours := []string{"VAULT_TOKEN_FILE=" + vaultFile, "AWS_WEB_IDENTITY_TOKEN_FILE=" + awsFile}
	want := map[string][]string{
		"fetch":   ours,
		"agent":   ours,
		"app":     append(slices.Clone(ours), "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/app"),
		"metrics": nil,
	}
	checkEnv := func(p *corev1.Pod) {
		t.Helper()
		for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
			if diff := cmp.Diff(want[c.Name], envOf(c)); diff != "" {
				t.Errorf("pod %s, container %s: env (-want +got):\n%s", p.Name, c.Name, diff)
			}
		}
	}
	checkEnv(p)
	if got := status(t, p).TokenFileEnv; !cmp.Equal(got, map[string]string{"VAULT_TOKEN_FILE": "vault", "AWS_WEB_IDENTITY_TOKEN_FILE": "sts.amazonaws.com"}) {
		t.Errorf("status records the variables as %v", got)
	}

	again := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "env-again", Annotations: p.Annotations}, Spec: *p.Spec.DeepCopy()}
	if err := env.Admin.Create(ctx, again); err != nil {
		t.Fatalf("a pod re-created from the webhook's output was refused: %v", err)
	}
	checkEnv(again)
}

// TestTokenFileEnvNeverOverwrites: a pod whose container sets a variable
// the annotation names to another value, or from a Secret, is denied with
// a message naming the annotation, the container, the variable and both
// values, and nothing is ensured for it.
func TestTokenFileEnvNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	for _, tc := range []struct {
		name    string
		env     corev1.EnvVar
		sa      string
		message string
	}{
		{"another value", corev1.EnvVar{Name: "VAULT_TOKEN_FILE", Value: "/x"}, "env-value", conflictDenial},
		{"from a Secret", corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "aws"}, Key: "token-file"}}}, "env-secret",
			`token-projector.io/token-file-env: "sts.amazonaws.com=AWS_WEB_IDENTITY_TOKEN_FILE" is not accepted: container "app" already sets ` +
				`AWS_WEB_IDENTITY_TOKEN_FILE from valueFrom.secretKeyRef (this annotation would set it to "` + awsFile + `")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod(ns, "", tokenFileEnvAnnotations(tc.sa))
			p.GenerateName = "denied-"
			p.Spec.Containers[0].Env = []corev1.EnvVar{tc.env}
			err := env.Admin.Create(ctx, p)
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("want the denial %q, got %v", tc.message, err)
			}
			assertNoIdentity(t, ns, tc.sa)
		})
	}
}

// TestTokenFileEnvWorkload: a Deployment's template is validated when the
// Deployment is applied (the workload webhook), with the pod's message; a
// valid one is admitted unchanged and the pod made from its template gets
// the variables.
func TestTokenFileEnvWorkload(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	deployment := func(name string, env ...corev1.EnvVar) *appsv1.Deployment {
		tmpl := template("", tokenFileEnvAnnotations(name+"-sa"))
		tmpl.Spec.Containers[0].Env = env
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
		}
	}

	err := env.Admin.Create(ctx, deployment("clash", corev1.EnvVar{Name: "VAULT_TOKEN_FILE", Value: "/x"}))
	if err == nil || !strings.Contains(err.Error(), conflictDenial) {
		t.Fatalf("want the denial %q at apply time, got %v", conflictDenial, err)
	}
	assertNoIdentity(t, ns, "clash-sa")

	d := deployment("web")
	if err := env.Admin.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if len(d.Spec.Template.Spec.Containers[0].Env) != 0 {
		t.Errorf("the Deployment's template was rewritten: %v", envOf(d.Spec.Template.Spec.Containers[0]))
	}
	// What the ReplicaSet controller would create (none runs here).
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "web-", Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations},
		Spec:       d.Spec.Template.Spec,
	}
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatalf("the Deployment's pod was refused: %v", err)
	}
	if diff := cmp.Diff([]string{"VAULT_TOKEN_FILE=" + vaultFile, "AWS_WEB_IDENTITY_TOKEN_FILE=" + awsFile}, envOf(p.Spec.Containers[0])); diff != "" {
		t.Errorf("the Deployment's pod: env (-want +got):\n%s", diff)
	}
}
