package install

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/server"
	"github.com/token-projector/token-projector/test/render"
)

const ns = render.Namespace

func chart(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render.Chart(root, ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// namespaced renders the chart in the namespaced RBAC scope.
func namespaced(t *testing.T, args ...string) []*unstructured.Unstructured {
	return chart(t, append([]string{"--set", "rbac.scope=namespaces", "--set", "rbac.namespaces={team-a,team-b}"}, args...)...)
}

// into converts the rendered object of that kind and name into typed.
func into(t *testing.T, objs []*unstructured.Unstructured, kind, name string, typed runtime.Object) {
	t.Helper()
	o := render.Find(objs, kind, name)
	if o == nil {
		t.Fatalf("no %s %s among %v", kind, name, render.Keys(objs))
	}
	if err := render.Into(o, typed); err != nil {
		t.Fatal(err)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

func webhookConfig(t *testing.T, objs []*unstructured.Unstructured) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	var c admissionregistrationv1.MutatingWebhookConfiguration
	into(t, objs, "MutatingWebhookConfiguration", "token-projector", &c)
	return &c
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	into(t, objs, "Deployment", "token-projector", &d)
	return &d
}

// TestChartFilesAreConfig: the chart renders the webhook's RBAC rules and its
// webhook configuration from config/, not from a copy that can drift.
func TestChartFilesAreConfig(t *testing.T) {
	for copyPath, source := range map[string]string{
		"files/rbac.yaml":        "config/rbac/role.yaml",
		"files/rbac-gc.yaml":     "config/gc/role.yaml",
		"files/webhook.yaml":     "config/webhook/manifests.yaml",
		"files/tokenpolicy.yaml": "config/tokenpolicy/policy.yaml",
	} {
		got, err := os.ReadFile(filepath.Join(root, render.ChartDir, copyPath))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(root, source))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s differs from %s: run `make chart-sync` and commit both", render.ChartDir, copyPath, source)
		}
	}
}

// podsWebhook is the webhook of the configuration that serves pods.
func podsWebhook(t *testing.T, c *admissionregistrationv1.MutatingWebhookConfiguration) admissionregistrationv1.MutatingWebhook {
	t.Helper()
	for _, w := range c.Webhooks {
		if s := w.ClientConfig.Service; s != nil && s.Path != nil && *s.Path == admission.PodsPath {
			return w
		}
	}
	t.Fatalf("no webhook serves %s", admission.PodsPath)
	return admissionregistrationv1.MutatingWebhook{}
}

// TestWebhookConfigurationDefaults checks every field the issue and DESIGN.md
// fix: who is sent to the webhook, and what happens when it is down.
func TestWebhookConfigurationDefaults(t *testing.T) {
	objs := chart(t)
	c := webhookConfig(t, objs)
	if got, want := c.Annotations["cert-manager.io/inject-ca-from"], ns+"/token-projector-serving-cert"; got != want {
		t.Errorf("inject-ca-from = %q, want %q", got, want)
	}
	// What the chart decides holds for every webhook of config/webhook.
	for _, w := range c.Webhooks {
		if w.ClientConfig.URL != nil || w.ClientConfig.Service == nil {
			t.Fatalf("%s: clientConfig = %+v, want the chart's Service", w.Name, w.ClientConfig)
		}
		svc := w.ClientConfig.Service
		if svc.Name != "token-projector-webhook" || svc.Namespace != ns || svc.Port == nil || *svc.Port != 443 {
			t.Errorf("%s: clientConfig.service = %s/%s:%v", w.Name, svc.Namespace, svc.Name, deref(svc.Port))
		}
		if len(w.ClientConfig.CABundle) != 0 {
			t.Errorf("%s: caBundle is rendered; cert-manager's CA injector must be its only source", w.Name)
		}
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail {
			t.Errorf("%s: failurePolicy = %v, want Fail", w.Name, deref(w.FailurePolicy))
		}
		if w.TimeoutSeconds == nil || *w.TimeoutSeconds != 5 {
			t.Errorf("%s: timeoutSeconds = %v, want 5", w.Name, deref(w.TimeoutSeconds))
		}
		if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun {
			t.Errorf("%s: sideEffects = %v, want NoneOnDryRun", w.Name, deref(w.SideEffects))
		}
		if !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) {
			t.Errorf("%s: admissionReviewVersions = %v", w.Name, w.AdmissionReviewVersions)
		}
		assertSelectors(t, w, map[string]bool{
			"opted-in": true, "not-labelled": false, "opted-in namespace disabled": false,
			"kube-system": false, "kube-public": false, "kube-node-lease": false, ns: false,
		})
	}
	w := podsWebhook(t, c)
	wantRules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: ptr(admissionregistrationv1.NamespacedScope),
		},
	}}
	if diff := cmp.Diff(wantRules, w.Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("reinvocationPolicy = %v, want IfNeeded", deref(w.ReinvocationPolicy))
	}
	// What each expression decides is tested with kube-apiserver's CEL
	// library in pkg/admission (TestMatchConditions).
	if len(w.MatchConditions) != 2 || !strings.Contains(w.MatchConditions[0].Expression, "'"+mutate.AnnotationAudience+"'") ||
		!strings.Contains(w.MatchConditions[1].Expression, corev1.MirrorPodAnnotationKey) {
		t.Errorf("matchConditions = %+v, want one requiring %s and one excluding mirror pods", w.MatchConditions, mutate.AnnotationAudience)
	}
	assertSelectors(t, w, map[string]bool{
		"opted-in":                  true,
		"opted-in pod opted out":    false,
		"opted-in, other pod label": true,
	})
}

// assertSelectors evaluates the webhook's namespace and object selectors on
// labelled namespaces and pods, as kube-apiserver does before calling it.
func assertSelectors(t *testing.T, w admissionregistrationv1.MutatingWebhook, want map[string]bool) {
	t.Helper()
	// An absent selector selects everything (LabelSelectorAsSelector would
	// make it select nothing).
	selector := func(s *metav1.LabelSelector) labels.Selector {
		if s == nil {
			return labels.Everything()
		}
		sel, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return sel
	}
	nsSel, objSel := selector(w.NamespaceSelector), selector(w.ObjectSelector)
	optedIn := map[string]string{mutate.LabelInject: mutate.InjectEnabled}
	nsLabels := func(name string, l map[string]string) labels.Set {
		s := labels.Set{"kubernetes.io/metadata.name": name}
		for k, v := range l {
			s[k] = v
		}
		return s
	}
	cases := map[string]struct {
		ns  labels.Set
		pod labels.Set
	}{
		"opted-in":                    {nsLabels("apps", optedIn), nil},
		"not-labelled":                {nsLabels("apps", nil), nil},
		"opted-in namespace disabled": {nsLabels("apps", map[string]string{mutate.LabelInject: "disabled"}), nil},
		"opted-in pod opted out":      {nsLabels("apps", optedIn), labels.Set{mutate.LabelInject: mutate.InjectDisabled}},
		"opted-in, other pod label":   {nsLabels("apps", optedIn), labels.Set{"app": "web"}},
	}
	for name := range want {
		if _, ok := cases[name]; !ok {
			// A namespace name: opted in by label, and still excluded by name.
			cases[name] = struct {
				ns  labels.Set
				pod labels.Set
			}{nsLabels(name, optedIn), nil}
		}
	}
	for name, wantCalled := range want {
		c := cases[name]
		if got := nsSel.Matches(c.ns) && objSel.Matches(c.pod); got != wantCalled {
			t.Errorf("%s: webhook called = %v, want %v (namespaceSelector %v, objectSelector %v)", name, got, wantCalled, nsSel, objSel)
		}
	}
}

func TestWebhookConfigurationValues(t *testing.T) {
	objs := chart(t, "--set", "webhook.failurePolicy=Ignore", "--set", "webhook.timeoutSeconds=10",
		"--set", "webhook.excludeNamespaces={monitoring}", "--set", "ensureTimeout=8s")
	for _, w := range webhookConfig(t, objs).Webhooks {
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("%s: failurePolicy = %v, want Ignore", w.Name, deref(w.FailurePolicy))
		}
		if w.TimeoutSeconds == nil || *w.TimeoutSeconds != 10 {
			t.Errorf("%s: timeoutSeconds = %v, want 10", w.Name, deref(w.TimeoutSeconds))
		}
		assertSelectors(t, w, map[string]bool{"opted-in": true, "monitoring": false, ns: false, "kube-system": false})
	}
	if args := deployment(t, objs).Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--ensure-timeout=8s") {
		t.Errorf("args %v lack --ensure-timeout=8s", args)
	}
}

// TestReleaseNamespaceIsExcluded: in another namespace, the chart excludes
// that one (not token-projector-system) and names its objects there.
func TestReleaseNamespaceIsExcluded(t *testing.T) {
	objs, err := render.Chart(root, "security")
	if err != nil {
		t.Fatal(err)
	}
	c := webhookConfig(t, objs)
	for _, w := range c.Webhooks {
		assertSelectors(t, w, map[string]bool{"security": false, ns: true, "opted-in": true})
		if w.ClientConfig.Service.Namespace != "security" {
			t.Errorf("%s: service in %s", w.Name, w.ClientConfig.Service.Namespace)
		}
	}
	if got := c.Annotations["cert-manager.io/inject-ca-from"]; got != "security/token-projector-serving-cert" {
		t.Errorf("inject-ca-from %s", got)
	}
	var cert unstructured.Unstructured
	cert.Object = render.Find(objs, "Certificate", "token-projector-serving-cert").Object
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if !slices.Contains(dns, "token-projector-webhook.security.svc") {
		t.Errorf("dnsNames = %v", dns)
	}
}

func TestRBACClusterScope(t *testing.T) {
	objs := chart(t)
	bindings := render.OfKind(objs, "ClusterRoleBinding")
	if got, want := render.Keys(bindings), []string{"ClusterRoleBinding /token-projector", "ClusterRoleBinding /token-projector-namespaces"}; !slices.Equal(got, want) {
		t.Errorf("ClusterRoleBindings = %v, want %v", got, want)
	}
	if got, want := render.Keys(render.OfKind(objs, "RoleBinding")), []string{"RoleBinding " + ns + "/token-projector-leader-election",
		"RoleBinding " + ns + "/token-projector-token-policy"}; !slices.Equal(got, want) {
		t.Errorf("RoleBindings in cluster scope = %v, want only %v (the leader-election Lease, the token policy's ConfigMap)", got, want)
	}
	for _, b := range bindings {
		var crb rbacv1.ClusterRoleBinding
		if err := render.Into(b, &crb); err != nil {
			t.Fatal(err)
		}
		assertSubject(t, crb.Subjects)
		if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != crb.Name {
			t.Errorf("%s roleRef = %+v", crb.Name, crb.RoleRef)
		}
	}
	args := deployment(t, objs).Spec.Template.Spec.Containers[0].Args
	for _, a := range args {
		if strings.HasPrefix(a, "--namespaces") {
			t.Errorf("cluster scope passes %s", a)
		}
	}
}

func TestRBACNamespacedScope(t *testing.T) {
	objs := namespaced(t)
	if got, want := render.Keys(render.OfKind(objs, "ClusterRoleBinding")), []string{"ClusterRoleBinding /token-projector-namespaces"}; !slices.Equal(got, want) {
		t.Errorf("ClusterRoleBindings = %v, want only %v (reading namespaces)", got, want)
	}
	if got, want := render.Keys(render.OfKind(objs, "RoleBinding")), []string{"RoleBinding team-a/token-projector", "RoleBinding team-b/token-projector",
		"RoleBinding " + ns + "/token-projector-leader-election", "RoleBinding " + ns + "/token-projector-token-policy"}; !slices.Equal(got, want) {
		t.Errorf("RoleBindings = %v, want %v", got, want)
	}
	for _, b := range render.OfKind(objs, "RoleBinding") {
		var rb rbacv1.RoleBinding
		if err := render.Into(b, &rb); err != nil {
			t.Fatal(err)
		}
		assertSubject(t, rb.Subjects)
		if rb.Namespace == ns {
			continue // the leader-election and token-policy Roles, in the release namespace
		}
		if rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "token-projector"}) {
			t.Errorf("%s/%s roleRef = %+v", rb.Namespace, rb.Name, rb.RoleRef)
		}
	}
	if args := deployment(t, objs).Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--namespaces=team-a,team-b") {
		t.Errorf("args %v lack --namespaces=team-a,team-b", args)
	}
	// Opted-in namespaces outside the list are not sent to a webhook that
	// could not write there.
	for _, w := range webhookConfig(t, objs).Webhooks {
		assertSelectors(t, w, map[string]bool{"team-a": true, "team-b": true, "opted-in": false, ns: false})
	}
}

func assertSubject(t *testing.T, subjects []rbacv1.Subject) {
	t.Helper()
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "token-projector", Namespace: ns}}
	if diff := cmp.Diff(want, subjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
}

// TestRBACGarbageCollection: token-projector-gc (delete) is rendered, from
// config/gc/role.yaml, and bound in the configured scope only when garbage
// collection is on: a default install carries no delete permission at all,
// bound or not, for RBAC audits to flag.
func TestRBACGarbageCollection(t *testing.T) {
	for _, objs := range [][]*unstructured.Unstructured{chart(t), namespaced(t)} {
		if o := render.Find(objs, "ClusterRole", "token-projector-gc"); o != nil {
			t.Errorf("gc is off, yet the chart renders %s", render.Key(o))
		}
		for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
			for _, b := range render.OfKind(objs, kind) {
				if b.GetName() == "token-projector-gc" {
					t.Errorf("gc is off, yet the chart renders %s", render.Key(b))
				}
			}
		}
	}
	cluster := chart(t, "--set", "gc.enabled=true", "--set", "gc.ttl=48h")
	if render.Find(cluster, "ClusterRole", "token-projector-gc") == nil {
		t.Error("gc.enabled does not render token-projector-gc from config/gc/role.yaml")
	}
	if render.Find(cluster, "ClusterRoleBinding", "token-projector-gc") == nil {
		t.Errorf("gc.enabled binds no token-projector-gc: %v", render.Keys(render.OfKind(cluster, "ClusterRoleBinding")))
	}
	if o := parseArgs(t, deployment(t, cluster).Spec.Template.Spec.Containers[0].Args); o.GCTTL.String() != "48h0m0s" {
		t.Errorf("--gc-ttl = %s, want 48h", o.GCTTL)
	}
	objs := namespaced(t, "--set", "gc.enabled=true")
	if render.Find(objs, "ClusterRoleBinding", "token-projector-gc") != nil {
		t.Error("namespaced scope binds token-projector-gc cluster-wide")
	}
	var gcBindings []string
	for _, rb := range render.OfKind(objs, "RoleBinding") {
		if rb.GetName() == "token-projector-gc" {
			gcBindings = append(gcBindings, rb.GetNamespace())
		}
	}
	if !slices.Equal(gcBindings, []string{"team-a", "team-b"}) {
		t.Errorf("token-projector-gc bound in %v, want team-a and team-b", gcBindings)
	}
}

// TestRBACLeastPrivilege audits every rule the chart grants, in both scopes
// and with every optional role bound: no wildcards, no verb that lifts RBAC
// escalation prevention, and no verb that changes or removes an object the
// webhook did not create. The exceptions are its own Events (the recorder
// patches a series' count) and token-projector-gc, which deletes the
// identities the webhook created (the code checks its label and UID; RBAC
// cannot). SECURITY.md explains each rule: change both together.
func TestRBACLeastPrivilege(t *testing.T) {
	never := []string{"escalate", "bind", "impersonate", "deletecollection"}
	renders := map[string][]*unstructured.Unstructured{
		"cluster":    chart(t, "--set", "gc.enabled=true"),
		"namespaces": namespaced(t, "--set", "gc.enabled=true"),
	}
	for name, objs := range renders {
		roles := append(render.OfKind(objs, "ClusterRole"), render.OfKind(objs, "Role")...)
		if len(roles) == 0 {
			t.Fatalf("%s: no roles rendered", name)
		}
		for _, o := range roles {
			var r rbacv1.ClusterRole
			kind, namespace := o.GetKind(), o.GetNamespace()
			o := o.DeepCopy()
			o.SetKind("ClusterRole")
			if err := render.Into(o, &r); err != nil {
				t.Fatal(err)
			}
			if r.AggregationRule != nil {
				t.Errorf("%s %s: aggregationRule grants what other roles hold", name, r.Name)
			}
			for _, rule := range r.Rules {
				for _, field := range [][]string{rule.Verbs, rule.APIGroups, rule.Resources, rule.NonResourceURLs} {
					for _, v := range field {
						if strings.Contains(v, "*") {
							t.Errorf("%s %s: rule %+v has a wildcard", name, r.Name, rule)
						}
					}
				}
				if len(rule.NonResourceURLs) > 0 {
					t.Errorf("%s %s: non-resource URLs in %+v", name, r.Name, rule)
				}
				ownEvents := slices.Equal(rule.Resources, []string{"events"}) && (slices.Equal(rule.APIGroups, []string{"events.k8s.io"}) ||
					slices.Equal(rule.APIGroups, []string{""}) && kind == "Role")
				// The leader-election Lease: a Role, so only in the release namespace.
				ownLease := kind == "Role" && namespace == ns &&
					slices.Equal(rule.Resources, []string{"leases"}) && slices.Equal(rule.APIGroups, []string{"coordination.k8s.io"})
				// The token policy's ConfigMap, by name, in the release namespace.
				ownParams := kind == "Role" && namespace == ns && slices.Equal(rule.Resources, []string{"configmaps"}) &&
					slices.Equal(rule.ResourceNames, []string{"token-projector-token-policy"})
				ownIdentities := r.Name == "token-projector-gc" && !slices.ContainsFunc(rule.Resources, func(res string) bool {
					return res != "serviceaccounts" && res != "roles" && res != "rolebindings"
				})
				for _, v := range rule.Verbs {
					switch {
					case slices.Contains(never, v):
					case (v == "update" || v == "patch") && ownEvents:
						continue
					case v == "update" && ownLease:
						continue
					case v == "update" && ownParams:
						continue
					case v == "delete" && ownIdentities:
						continue
					case v == "update" || v == "patch" || v == "delete":
					default:
						continue
					}
					t.Errorf("%s %s: rule %+v grants %q", name, r.Name, rule, v)
				}
				// Reading bindings, before an account is created: are they
				// any that name it? (SECURITY.md, config/rbac/role.yaml)
				readsBindings := r.Name == "token-projector-namespaces" && slices.Equal(rule.APIGroups, []string{"rbac.authorization.k8s.io"}) &&
					!slices.ContainsFunc(rule.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" })
				for _, res := range rule.Resources {
					if res == "clusterrolebindings" && readsBindings {
						continue
					}
					if res == "secrets" || res == "clusterroles" || res == "clusterrolebindings" || strings.HasSuffix(res, "webhookconfigurations") {
						t.Errorf("%s %s: the webhook has no business with %s", name, r.Name, res)
					}
				}
			}
		}
	}
}

// TestDeployment checks what a cluster admin expects of a webhook that can
// block pod creation: replicas spread over nodes, a disruption budget,
// restricted security, real probes, and flags the binary accepts.
func TestDeployment(t *testing.T) {
	objs := chart(t, "--set", "priorityClassName=system-cluster-critical")
	d := deployment(t, objs)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", deref(d.Spec.Replicas))
	}
	pod := d.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("selector %v does not select the pod template %v (%v)", sel, pod.Labels, err)
	}
	if pod.Spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("priorityClassName = %q", pod.Spec.PriorityClassName)
	}
	if pod.Spec.ServiceAccountName != "token-projector" {
		t.Errorf("serviceAccountName = %q", pod.Spec.ServiceAccountName)
	}
	psc := pod.Spec.SecurityContext
	if psc == nil || !deref(psc.RunAsNonRoot) || deref(psc.RunAsUser) != 65532 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v", psc)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("containers: %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || deref(sc.AllowPrivilegeEscalation) || !deref(sc.ReadOnlyRootFilesystem) || deref(sc.Privileged) || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext = %+v", sc)
	}
	probe := func(p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("health") {
			t.Errorf("probe on %s = %+v", path, p)
		}
	}
	probe(c.ReadinessProbe, "/readyz")
	probe(c.LivenessProbe, "/healthz")
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v", c.Resources)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	// 10250: the port GKE private clusters' control-plane firewall allows.
	if ports["webhook"] != 10250 || ports["health"] != 8081 || ports["metrics"] != 8080 {
		t.Errorf("ports = %v", ports)
	}
	// The Service sends 443 to the named webhook port, the one the flags bind.
	var svc corev1.Service
	into(t, objs, "Service", "token-projector-webhook", &svc)
	if !sel.Matches(labels.Set(svc.Spec.Selector)) || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Errorf("Service selector %v vs pod labels %v", svc.Spec.Selector, pod.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromString("webhook") {
		t.Errorf("Service ports = %+v", svc.Spec.Ports)
	}
	// The serving certificate's Secret is what the webhook reads as --cert-dir.
	var mountPath string
	for _, m := range c.VolumeMounts {
		if m.Name == "serving-cert" && m.ReadOnly {
			mountPath = m.MountPath
		}
	}
	o := parseArgs(t, c.Args)
	if mountPath == "" || o.CertDir != mountPath {
		t.Errorf("--cert-dir=%s, serving-cert mounted read-only at %q", o.CertDir, mountPath)
	}
	if o.WebhookPort != 10250 || o.HealthProbeBindAddress != ":8081" || o.MetricsBindAddress != ":8080" {
		t.Errorf("flags: port %d, probes %s, metrics %s", o.WebhookPort, o.HealthProbeBindAddress, o.MetricsBindAddress)
	}
	// On SIGTERM it drains, then finishes in-flight admissions; the kubelet
	// waits for both before it sends SIGKILL.
	if o.DrainDelay != 10*time.Second || o.ShutdownTimeout != 15*time.Second {
		t.Errorf("--drain-delay=%s --shutdown-timeout=%s, want 10s and 15s", o.DrainDelay, o.ShutdownTimeout)
	}
	if grace := time.Duration(deref(pod.Spec.TerminationGracePeriodSeconds)) * time.Second; grace <= o.DrainDelay+o.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %s does not cover drain delay %s + shutdown timeout %s", grace, o.DrainDelay, o.ShutdownTimeout)
	}
	cert := render.Find(objs, "Certificate", "token-projector-serving-cert")
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	var secretVolume string
	for _, v := range pod.Spec.Volumes {
		if v.Name == "serving-cert" && v.Secret != nil {
			secretVolume = v.Secret.SecretName
		}
	}
	if secretVolume == "" || secretVolume != secretName {
		t.Errorf("serving-cert volume is Secret %q, the Certificate writes %q", secretVolume, secretName)
	}
	// Replicas spread over nodes, and the spread selects these pods.
	var byHost bool
	for _, tsc := range pod.Spec.TopologySpreadConstraints {
		s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		if err != nil || !s.Matches(labels.Set(pod.Labels)) {
			t.Errorf("topology spread on %s does not select the pods (%v)", tsc.TopologyKey, err)
		}
		byHost = byHost || (tsc.TopologyKey == corev1.LabelHostname && tsc.WhenUnsatisfiable == corev1.DoNotSchedule)
	}
	if !byHost {
		t.Errorf("no hard spread over nodes: %+v", pod.Spec.TopologySpreadConstraints)
	}
	var pdb policyv1.PodDisruptionBudget
	into(t, objs, "PodDisruptionBudget", "token-projector", &pdb)
	pdbSel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || !pdbSel.Matches(labels.Set(pod.Labels)) || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget = %+v (%v), want minAvailable 1", pdb.Spec, err)
	}
}

// TestDisruptionAndShutdownValues: one replica renders no
// PodDisruptionBudget (minAvailable 1 would block every drain of its node);
// the grace period follows the drain delay and shutdown timeout set.
func TestDisruptionAndShutdownValues(t *testing.T) {
	if pdbs := render.OfKind(chart(t, "--set", "replicaCount=1"), "PodDisruptionBudget"); len(pdbs) != 0 {
		t.Errorf("replicaCount=1 renders a PodDisruptionBudget: %v", pdbs)
	}
	if pdbs := render.OfKind(chart(t, "--set", "podDisruptionBudget.enabled=false"), "PodDisruptionBudget"); len(pdbs) != 0 {
		t.Errorf("podDisruptionBudget.enabled=false renders one: %v", pdbs)
	}
	var pdb policyv1.PodDisruptionBudget
	into(t, chart(t, "--set", "replicaCount=3", "--set-string", "podDisruptionBudget.minAvailable=50%"), "PodDisruptionBudget", "token-projector", &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.String() != "50%" {
		t.Errorf("minAvailable = %v, want 50%%", pdb.Spec.MinAvailable)
	}
	d := deployment(t, chart(t, "--set", "shutdown.drainDelaySeconds=0", "--set", "shutdown.timeoutSeconds=40"))
	o := parseArgs(t, d.Spec.Template.Spec.Containers[0].Args)
	if o.DrainDelay != 0 || o.ShutdownTimeout != 40*time.Second || deref(d.Spec.Template.Spec.TerminationGracePeriodSeconds) != 45 {
		t.Errorf("--drain-delay=%s --shutdown-timeout=%s terminationGracePeriodSeconds=%d, want 0s, 40s, 45",
			o.DrainDelay, o.ShutdownTimeout, deref(d.Spec.Template.Spec.TerminationGracePeriodSeconds))
	}
}

// TestDeploymentFlagsParse: every value that becomes a flag gives arguments
// the webhook parses and accepts (an unknown flag would crash-loop the pods).
func TestDeploymentFlagsParse(t *testing.T) {
	for name, args := range map[string][]string{
		"defaults":         nil,
		"namespaces":       {"--set", "rbac.scope=namespaces", "--set", "rbac.namespaces={team-a}"},
		"gc and client CA": {"--set", "gc.enabled=true", "--set", "clientCA.configMap=apiserver-client-ca"},
		"api rate limit":   {"--set", "apiRateLimit.qps=2.5", "--set", "apiRateLimit.burst=40"},
		"namespace reads":  {"--set", "namespaceReadRateLimit.qps=0.5", "--set", "namespaceReadRateLimit.burst=7"},
		"tokens": {"--set", "tokens.maxExpiration=12h", "--set", "tokens.defaultExpiration=30m", "--set", "tokens.allowedAudiences={vault,*.example.com}",
			"--set", "metrics.enabled=false", "--set", "ensureTimeout=1500ms", "--set", "extraArgs={--zap-log-level=debug}"},
	} {
		t.Run(name, func(t *testing.T) {
			o := parseArgs(t, deployment(t, chart(t, args...)).Spec.Template.Spec.Containers[0].Args)
			if name == "tokens" {
				if o.MaxExpiration.String() != "12h0m0s" || o.DefaultExpiration.String() != "30m0s" || !slices.Equal(o.AllowedAudiences, []string{"vault", "*.example.com"}) || o.MetricsBindAddress != "0" || o.EnsureTimeout.String() != "1.5s" {
					t.Errorf("options = %+v", o)
				}
			}
			if name == "defaults" && (o.APIQPS != 200 || o.APIBurst != 1000 || o.NamespaceReadQPS != 50 || o.NamespaceReadBurst != 200) {
				t.Errorf("--api-qps=%v --api-burst=%d --namespace-read-qps=%v --namespace-read-burst=%d, want 200, 1000, 50 and 200",
					o.APIQPS, o.APIBurst, o.NamespaceReadQPS, o.NamespaceReadBurst)
			}
			if name == "namespace reads" && (o.NamespaceReadQPS != 0.5 || o.NamespaceReadBurst != 7 || o.APIQPS != 200) {
				t.Errorf("--namespace-read-qps=%v --namespace-read-burst=%d --api-qps=%v, want 0.5, 7 and 200", o.NamespaceReadQPS, o.NamespaceReadBurst, o.APIQPS)
			}
			if name == "api rate limit" && (o.APIQPS != 2.5 || o.APIBurst != 40) {
				t.Errorf("--api-qps=%v --api-burst=%d, want 2.5 and 40", o.APIQPS, o.APIBurst)
			}
			if name == "namespaces" && !slices.Equal(o.Namespaces, []string{"team-a"}) {
				t.Errorf("namespaces = %v", o.Namespaces)
			}
			if name == "gc and client CA" && (o.GCTTL.String() != "24h0m0s" || o.ClientCA != "/etc/token-projector/client-ca/ca.crt") {
				t.Errorf("gc-ttl %s, client-ca %q", o.GCTTL, o.ClientCA)
			}
		})
	}
}

// TestLeaderElectionLeasePerRelease: each release elects its reconciler
// through its own Lease, which its leader-election Role lets it use; the
// documented release keeps the Lease config/ names.
func TestLeaderElectionLeasePerRelease(t *testing.T) {
	leases := map[string]string{}
	for _, release := range []string{render.Release, "team-a", "team-b"} {
		objs, fullname := renderRelease(t, release)
		var d appsv1.Deployment
		into(t, objs, "Deployment", fullname, &d)
		o := parseArgs(t, d.Spec.Template.Spec.Containers[0].Args)
		if !o.LeaderElection || o.LeaderElectionNamespace != "" {
			t.Errorf("release %s: --leader-elect=%v --leader-election-namespace=%q, want on, in the pod's namespace", release, o.LeaderElection, o.LeaderElectionNamespace)
		}
		if other, ok := leases[o.LeaderElectionID]; ok {
			t.Errorf("releases %s and %s share the Lease %q", other, release, o.LeaderElectionID)
		}
		leases[o.LeaderElectionID] = release
		if release == render.Release && o.LeaderElectionID != server.DefaultLeaderElectionID {
			t.Errorf("release %s: --leader-election-id=%q, want %q (config/'s)", release, o.LeaderElectionID, server.DefaultLeaderElectionID)
		}

		var role rbacv1.Role
		into(t, objs, "Role", fullname+"-leader-election", &role)
		if role.Namespace != ns {
			t.Errorf("release %s: leader-election Role in %q, want %q", release, role.Namespace, ns)
		}
		allowed := map[string]bool{}
		for _, r := range role.Rules {
			if slices.Equal(r.APIGroups, []string{"coordination.k8s.io"}) && slices.Equal(r.Resources, []string{"leases"}) &&
				(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, o.LeaderElectionID)) {
				for _, v := range r.Verbs {
					allowed[v] = true
				}
			}
		}
		if !allowed["get"] || !allowed["create"] || !allowed["update"] {
			t.Errorf("release %s: Role %s allows %v on the Lease %s, want get, create and update", release, role.Name, allowed, o.LeaderElectionID)
		}
	}
}

// TestTokenPolicyPerRelease: each release installs the token policy of
// config/tokenpolicy under its own names, its binding reads the ConfigMap
// in the release namespace, the webhook records the API audiences in that
// ConfigMap, and its Role lets it read and update that ConfigMap and mint
// for its own account only.
func TestTokenPolicyPerRelease(t *testing.T) {
	for _, release := range []string{render.Release, "team-a"} {
		objs, fullname := renderRelease(t, release)
		name := fullname + "-token-policy"
		var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
		into(t, objs, "ValidatingAdmissionPolicyBinding", name, &binding)
		var policy admissionregistrationv1.ValidatingAdmissionPolicy
		into(t, objs, "ValidatingAdmissionPolicy", name, &policy)
		var cm corev1.ConfigMap
		into(t, objs, "ConfigMap", name, &cm)
		if binding.Spec.PolicyName != name || binding.Spec.ParamRef == nil || binding.Spec.ParamRef.Name != name || binding.Spec.ParamRef.Namespace != ns {
			t.Errorf("release %s: binding %+v, want policy %s and ConfigMap %s/%s", release, binding.Spec, name, ns, name)
		}
		if !slices.Equal(binding.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) ||
			deref(binding.Spec.ParamRef.ParameterNotFoundAction) != admissionregistrationv1.AllowAction {
			t.Errorf("release %s: binding %+v, want Deny and, without the ConfigMap, Allow (Deny would refuse every TokenRequest)", release, binding.Spec)
		}
		// No matchConditions: kube-apiserver evaluates them without the
		// namespaceObject, so one reading it would fail every TokenRequest.
		if deref(policy.Spec.FailurePolicy) != admissionregistrationv1.Fail || len(policy.Spec.MatchConditions) != 0 {
			t.Errorf("release %s: policy failurePolicy %v, matchConditions %v: want Fail and none", release, policy.Spec.FailurePolicy, policy.Spec.MatchConditions)
		}
		if cm.Namespace != ns || len(cm.Data) != 0 {
			t.Errorf("release %s: ConfigMap %s/%s with %v, want it empty in the release namespace (the webhook fills it)", release, cm.Namespace, cm.Name, cm.Data)
		}
		var d appsv1.Deployment
		into(t, objs, "Deployment", fullname, &d)
		if o := parseArgs(t, d.Spec.Template.Spec.Containers[0].Args); o.TokenPolicyConfigMap != name {
			t.Errorf("release %s: --token-policy-configmap=%q, want %q", release, o.TokenPolicyConfigMap, name)
		}
		var role rbacv1.Role
		into(t, objs, "Role", name, &role)
		want := []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{fullname}, Verbs: []string{"create"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{name}, Verbs: []string{"get", "update"}},
		}
		if diff := cmp.Diff(want, role.Rules); role.Namespace != ns || diff != "" {
			t.Errorf("release %s: Role %s/%s rules (-want +got):\n%s", release, role.Namespace, role.Name, diff)
		}
	}
}

// renderRelease renders the chart as release, and names its objects' prefix:
// the release's name if it contains the chart's, else <release>-token-projector.
func renderRelease(t *testing.T, release string) ([]*unstructured.Unstructured, string) {
	t.Helper()
	objs, err := render.ChartRelease(root, release, ns)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(release, "token-projector") {
		return objs, release
	}
	return objs, release + "-token-projector"
}

// parseArgs parses container arguments with the webhook's own flag set.
func parseArgs(t *testing.T, args []string) server.Options {
	t.Helper()
	o := server.DefaultOptions()
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.BindFlags(fs)
	var zapOpts zap.Options
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("the webhook rejects %v: %v", args, err)
	}
	if fs.NArg() != 0 {
		t.Fatalf("stray arguments %v", fs.Args())
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("the webhook refuses to start with %v: %v", args, err)
	}
	return o
}

func TestCertificates(t *testing.T) {
	t.Run("own CA", func(t *testing.T) {
		objs := chart(t)
		want := []string{
			"Certificate " + ns + "/token-projector-ca", "Certificate " + ns + "/token-projector-serving-cert",
			"Issuer " + ns + "/token-projector-ca", "Issuer " + ns + "/token-projector-selfsigned",
		}
		if got := render.Keys(append(render.OfKind(objs, "Issuer"), render.OfKind(objs, "Certificate")...)); !slices.Equal(got, want) {
			t.Errorf("cert-manager objects = %v, want %v", got, want)
		}
		ca := render.Find(objs, "Certificate", "token-projector-ca")
		if isCA, _, _ := unstructured.NestedBool(ca.Object, "spec", "isCA"); !isCA {
			t.Error("the CA Certificate is not a CA")
		}
		assertIssuerRef(t, objs, "token-projector-ca", "Issuer")
	})
	t.Run("existing ClusterIssuer", func(t *testing.T) {
		objs := chart(t, "--set", "certManager.issuerRef.name=corp-ca", "--set", "certManager.issuerRef.kind=ClusterIssuer")
		if got := render.Keys(render.OfKind(objs, "Issuer")); len(got) != 0 {
			t.Errorf("Issuers rendered with an existing issuer: %v", got)
		}
		if got := render.Keys(render.OfKind(objs, "Certificate")); !slices.Equal(got, []string{"Certificate " + ns + "/token-projector-serving-cert"}) {
			t.Errorf("Certificates = %v", got)
		}
		assertIssuerRef(t, objs, "corp-ca", "ClusterIssuer")
	})
}

func assertIssuerRef(t *testing.T, objs []*unstructured.Unstructured, name, kind string) {
	t.Helper()
	cert := render.Find(objs, "Certificate", "token-projector-serving-cert")
	ref, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
	if diff := cmp.Diff(map[string]string{"name": name, "kind": kind, "group": "cert-manager.io"}, ref); diff != "" {
		t.Errorf("issuerRef (-want +got):\n%s", diff)
	}
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if !slices.Equal(dns, []string{"token-projector-webhook." + ns + ".svc", "token-projector-webhook." + ns + ".svc.cluster.local"}) {
		t.Errorf("dnsNames = %v", dns)
	}
}

func TestOptionalObjects(t *testing.T) {
	defaults := chart(t)
	for _, kind := range []string{"NetworkPolicy", "ServiceMonitor"} {
		if o := render.OfKind(defaults, kind); len(o) != 0 {
			t.Errorf("%s rendered by default", kind)
		}
	}
	objs := chart(t, "--set", "networkPolicy.enabled=true", "--set", "serviceMonitor.enabled=true",
		"--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring")
	var np networkingv1.NetworkPolicy
	into(t, objs, "NetworkPolicy", "token-projector", &np)
	if len(np.Spec.Ingress) != 2 || np.Spec.Ingress[0].Ports[0].Port.String() != "webhook" || np.Spec.Ingress[1].Ports[0].Port.String() != "metrics" || len(np.Spec.Ingress[1].From) != 1 {
		t.Errorf("NetworkPolicy ingress = %+v", np.Spec.Ingress)
	}
	sm := render.Find(objs, "ServiceMonitor", "token-projector")
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	var metricsSvc corev1.Service
	into(t, objs, "Service", "token-projector-metrics", &metricsSvc)
	smSel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if !labels.SelectorFromSet(smSel).Matches(labels.Set(metricsSvc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select the metrics Service %v", smSel, metricsSvc.Labels)
	}
	if labels.SelectorFromSet(smSel).Matches(labels.Set(render.Find(objs, "Service", "token-projector-webhook").GetLabels())) {
		t.Error("ServiceMonitor also selects the webhook Service")
	}
}

// TestGrafanaDashboard: off by default; on, a ConfigMap carrying exactly the
// dashboard file, labelled for Grafana's sidecar, in the namespace asked for.
func TestGrafanaDashboard(t *testing.T) {
	// The token policy's parameter is the one ConfigMap of the defaults.
	for _, o := range render.OfKind(chart(t), "ConfigMap") {
		if o.GetName() != "token-projector-token-policy" {
			t.Errorf("ConfigMap %s rendered by default", o.GetName())
		}
	}
	objs := chart(t, "--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=monitoring")
	var cm corev1.ConfigMap
	into(t, objs, "ConfigMap", "token-projector-dashboard", &cm)
	want, err := os.ReadFile(filepath.Join(root, "charts/token-projector/dashboards/token-projector.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["token-projector.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
		t.Errorf("the ConfigMap does not carry the dashboard file (%d bytes, want %d)", len(got), len(want))
	}
	if cm.Namespace != "monitoring" || cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("namespace %q labels %v", cm.Namespace, cm.Labels)
	}
}

// TestSchemaRejects: a typo or a wrong type fails the install with a message
// that names it, instead of being silently ignored.
func TestSchemaRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown top-level key": {[]string{"--set", "replicaCont=3"}, "replicaCont"},
		"unknown nested key":    {[]string{"--set", "webhook.failurPolicy=Ignore"}, "failurPolicy"},
		"wrong type":            {[]string{"--set-string", "replicaCount=two"}, "replicaCount"},
		"bad failurePolicy":     {[]string{"--set", "webhook.failurePolicy=Maybe"}, "failurePolicy"},
		"bad timeout":           {[]string{"--set", "webhook.timeoutSeconds=60"}, "timeoutSeconds"},
		"bad scope":             {[]string{"--set", "rbac.scope=namespace"}, "scope"},
		"bad duration":          {[]string{"--set", "tokens.maxExpiration=1d"}, "maxExpiration"},
		"bad namespace name":    {[]string{"--set", "rbac.scope=namespaces", "--set", "rbac.namespaces={Team_A}"}, "namespaces"},
		"ensureTimeout too long": {[]string{"--set", "ensureTimeout=5s"},
			"ensureTimeout (5s) must be below webhook.timeoutSeconds (5s): it is the deadline of each whole admission (the live namespace read takes at most a third of it"},
		"zero api qps":                    {[]string{"--set", "apiRateLimit.qps=0"}, "qps"},
		"zero api qps string":             {[]string{"--set-string", "apiRateLimit.qps=0.0"}, "qps"},
		"api qps not a number":            {[]string{"--set-string", "apiRateLimit.qps=fast"}, "qps"},
		"zero api burst":                  {[]string{"--set", "apiRateLimit.burst=0"}, "burst"},
		"fractional burst":                {[]string{"--set", "apiRateLimit.burst=1.5"}, "burst"},
		"unknown rate key":                {[]string{"--set", "apiRateLimit.rate=5"}, "rate"},
		"zero namespace read qps":         {[]string{"--set", "namespaceReadRateLimit.qps=0"}, "qps"},
		"zero namespace read burst":       {[]string{"--set", "namespaceReadRateLimit.burst=0"}, "burst"},
		"namespaces scope, no namespaces": {[]string{"--set", "rbac.scope=namespaces"}, "rbac.namespaces is empty"},
		"namespaces without the scope":    {[]string{"--set", "rbac.namespaces={team-a}"}, "set rbac.scope=namespaces"},
		"ServiceMonitor without metrics":  {[]string{"--set", "serviceMonitor.enabled=true", "--set", "metrics.enabled=false"}, "serviceMonitor.enabled needs metrics.enabled"},
		"unknown extra flag form":         {[]string{"--set", "extraArgs={-v=2}"}, "extraArgs"},
		"fractional drain delay":          {[]string{"--set", "shutdown.drainDelaySeconds=2.5"}, "drainDelaySeconds"},
		"negative drain delay":            {[]string{"--set", "shutdown.drainDelaySeconds=-1"}, "drainDelaySeconds"},
		"minAvailable not a number or %":  {[]string{"--set-string", "podDisruptionBudget.minAvailable=one"}, "minAvailable"},
		"maxUnavailable is gone":          {[]string{"--set", "podDisruptionBudget.maxUnavailable=1"}, "maxUnavailable"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render.Chart(root, ns, tc.args...)
			if err == nil {
				t.Fatalf("rendered with %v", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q:\n%v", tc.want, err)
			}
		})
	}
}

// TestValuesDocumented: every value a user sets in values.yaml has a comment
// right above it that says what it does (Kubernetes objects passed through
// as a whole, such as resources or securityContext, are documented as one).
func TestValuesDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, render.ChartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	passthrough := []string{"resources", "podSecurityContext", "securityContext", "topologySpreadConstraints"}
	var parent, previous string
	checked := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		key, value, isKey := strings.Cut(trimmed, ":")
		if isKey && !strings.HasPrefix(trimmed, "#") && !strings.HasPrefix(trimmed, "-") && indent <= 2 {
			if indent == 0 {
				parent = key
			}
			leaf := strings.TrimSpace(value) != ""
			if leaf && (indent != 2 || !slices.Contains(passthrough, parent)) {
				checked++
				if !strings.HasPrefix(previous, "#") {
					t.Errorf("values.yaml: %q has no comment above it", trimmed)
				}
			}
		}
		previous = trimmed
	}
	if checked < 20 {
		t.Fatalf("checked only %d values: the parser no longer understands values.yaml", checked)
	}
}
