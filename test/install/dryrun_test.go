package install

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/test/render"
)

// ensureNamespace creates a namespace for the dry runs (a namespaced object
// cannot be validated in a namespace that does not exist) and has Pod
// Security admission judge workloads there by the restricted standard.
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	restricted := map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
	var nsObj corev1.Namespace
	err := env.Admin.Get(ctx, client.ObjectKey{Name: name}, &nsObj)
	if err != nil {
		nsObj = corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: restricted}}
		if err := env.Admin.Create(ctx, &nsObj); err != nil {
			t.Fatal(err)
		}
		return
	}
	patch := client.MergeFrom(nsObj.DeepCopy())
	if nsObj.Labels == nil {
		nsObj.Labels = map[string]string{}
	}
	for k, v := range restricted {
		nsObj.Labels[k] = v
	}
	if err := env.Admin.Patch(ctx, &nsObj, patch); err != nil {
		t.Fatal(err)
	}
}

// dryRun applies every object with server-side dry run: kube-apiserver
// validates it against its schema (cert-manager's CRDs included), runs
// admission (Pod Security on the Deployment) and writes nothing.
func dryRun(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	c, w := env.AdminWithWarnings(t) // server-side dry run as a superuser
	var all []string
	for _, o := range objs {
		err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
			client.FieldOwner("token-projector-install-test"), client.ForceOwnership, client.DryRunAll)
		if err != nil {
			t.Errorf("%s: kube-apiserver rejects it: %v", render.Key(o), err)
		}
		for _, msg := range w.Take() {
			all = append(all, render.Key(o)+": "+msg)
		}
	}
	return all
}

// TestManifestsPassServerSideDryRun sends every install the project ships to
// a real kube-apiserver: the chart's defaults, its namespaced RBAC scope, its
// optional objects, and config/default built by kustomize.
func TestManifestsPassServerSideDryRun(t *testing.T) {
	for _, n := range []string{ns, "team-a", "team-b"} {
		ensureNamespace(t, n)
	}
	kustomized, err := render.Kustomize(root, "config/default")
	if err != nil {
		t.Fatal(err)
	}
	withOptional := chart(t, "--set", "networkPolicy.enabled=true", "--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
		"--set", "certManager.issuerRef.name=corp-ca", "--set", "certManager.issuerRef.kind=ClusterIssuer", "--set", "priorityClassName=system-cluster-critical",
		"--set", "gc.enabled=true", "--set", "clientCA.configMap=apiserver-client-ca", "--set", "grafanaDashboard.enabled=true")
	for name, objs := range map[string][]*unstructured.Unstructured{
		"chart defaults":        chart(t),
		"chart namespaced RBAC": namespaced(t),
		// The ServiceMonitor's CRD belongs to prometheus-operator, which
		// this API server does not have: TestOptionalObjects checks it.
		"chart optional objects": withOptional,
		"kustomize":              kustomized,
	} {
		t.Run(name, func(t *testing.T) {
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			if warns := dryRun(t, objs); len(warns) != 0 {
				t.Errorf("kube-apiserver warns:\n%s", strings.Join(warns, "\n"))
			}
		})
	}
}

// TestPodSecurityWarnsOnWeakerContext shows the dry run above can fail: a
// chart whose container may escalate privileges is flagged by Pod Security
// admission under the restricted standard.
func TestPodSecurityWarnsOnWeakerContext(t *testing.T) {
	ensureNamespace(t, ns)
	objs := chart(t, "--set", "securityContext.allowPrivilegeEscalation=true")
	warns := dryRun(t, []*unstructured.Unstructured{render.Find(objs, "Deployment", "token-projector")})
	if len(warns) == 0 || !strings.Contains(strings.Join(warns, "\n"), "allowPrivilegeEscalation") {
		t.Errorf("want a restricted-standard warning about allowPrivilegeEscalation, got %v", warns)
	}
}
