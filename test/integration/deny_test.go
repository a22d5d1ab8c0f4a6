package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// TestDenials creates, through the API server, one pod for every denial of
// DESIGN.md and checks the message names the field, the value and what is
// accepted, and that nothing was ensured for a denied pod.
func TestDenials(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	// An account the pod may name in spec.serviceAccountName (the plugin
	// rejects missing ones before us).
	if err := env.Admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "builder"}}); err != nil {
		t.Fatal(err)
	}
	// A Role of our name that we do not own and that grants more.
	foreign := rbac.Role(ns, "taken")
	foreign.Labels = nil
	foreign.Rules[0].Verbs = []string{"create", "get"}
	if err := env.Admin.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	// A RoleBinding of our name, unowned, binding someone else.
	foreignRB := rbac.RoleBinding(ns, "bound")
	foreignRB.Labels = nil
	foreignRB.Subjects = append(foreignRB.Subjects, rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "mallory"})
	if err := env.Admin.Create(ctx, foreignRB); err != nil {
		t.Fatal(err)
	}

	withSA := func(sa string, extra map[string]string) map[string]string {
		m := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: sa}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		pod      func() *corev1.Pod
		message  []string
		noEnsure string // an account that must not have been created
	}{
		{name: "malformed expiry", pod: func() *corev1.Pod {
			return pod(ns, "", withSA("d1", map[string]string{mutate.AnnotationExpiration: "2h30x"}))
		},
			message: []string{mutate.AnnotationExpiration, `"2h30x"`, "from 10m to 24h"}, noEnsure: "d1"},
		{name: "expiry out of range", pod: func() *corev1.Pod {
			return pod(ns, "", withSA("d2", map[string]string{mutate.AnnotationExpiration: "599"}))
		},
			message: []string{mutate.AnnotationExpiration, `"599"`, "from 10m to 24h"}, noEnsure: "d2"},
		{name: "empty audience", pod: func() *corev1.Pod {
			return pod(ns, "", map[string]string{mutate.AnnotationAudience: "", mutate.AnnotationServiceAccount: "d3"})
		}, message: []string{mutate.AnnotationAudience, `""`, "non-empty audiences"}, noEnsure: "d3"},
		{name: "invalid account name", pod: func() *corev1.Pod { return pod(ns, "", withSA("Bad_Name", nil)) },
			message: []string{mutate.AnnotationServiceAccount, `"Bad_Name"`, "lower case letters"}},
		{name: "default account", pod: func() *corev1.Pod { return pod(ns, "", withSA("default", nil)) },
			message: []string{mutate.AnnotationServiceAccount, `"default"`, "dedicated ServiceAccount"}},
		{name: "account conflicts with spec", pod: func() *corev1.Pod {
			p := pod(ns, "", withSA("d4", nil))
			p.Spec.ServiceAccountName = "builder"
			return p
		}, message: []string{mutate.AnnotationServiceAccount, `"d4"`, `spec.serviceAccountName ("builder")`}, noEnsure: "d4"},
		{name: "volume conflict", pod: func() *corev1.Pod {
			p := pod(ns, "", withSA("d5", nil))
			p.Spec.Volumes = []corev1.Volume{{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			return p
		}, message: []string{"spec.volumes", `"token-projector"`, "no volume named token-projector other than"}, noEnsure: "d5"},
		{name: "mount path taken", pod: func() *corev1.Pod {
			p := pod(ns, "", withSA("d6", nil))
			p.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: mutate.DefaultMountPath}}
			return p
		}, message: []string{"containers[app].volumeMounts", mutate.DefaultMountPath, "mount path free"}, noEnsure: "d6"},
		{name: "foreign Role", pod: func() *corev1.Pod { return pod(ns, "", withSA("taken", nil)) },
			message: []string{"Role " + ns + "/taken-create-token", "not managed by token-projector"}},
		// A RoleBinding of our name that we did not write names the account
		// as its subject: the binding check denies before the account is
		// created (a foreign binding grants whatever account of that name
		// exists next), naming the binding.
		{name: "foreign RoleBinding", pod: func() *corev1.Pod { return pod(ns, "", withSA("bound", nil)) },
			message: []string{"RoleBinding " + ns + "/bound-create-token", "which token-projector did not write", "remove the binding"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pod()
			p.GenerateName = "denied-"
			err := env.Admin.Create(ctx, p)
			if err == nil {
				t.Fatalf("pod admitted: %+v", p.Spec)
			}
			for _, m := range tc.message {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("denial %q does not contain %q", err.Error(), m)
				}
			}
			if tc.noEnsure != "" {
				assertNoIdentity(t, ns, tc.noEnsure)
			}
		})
	}
	// The foreign objects are untouched.
	var role rbacv1.Role
	if err := env.Admin.Get(ctx, keyOf(foreign), &role); err != nil || len(role.Rules[0].Verbs) != 2 || rbac.IsManaged(&role) {
		t.Errorf("foreign Role changed: %+v, %v", role, err)
	}
}
