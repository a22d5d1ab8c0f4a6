package integration

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
	"github.com/token-projector/token-projector/test/testenv"
)

func pod(ns, name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "nginx:1.27"},
			{Name: "sidecar", Image: "envoy:1.30"},
		}},
	}
}

func classic(sa string) map[string]string {
	return map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationExpiration: "2h", mutate.AnnotationServiceAccount: sa}
}

func tokenVolumes(p *corev1.Pod) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range p.Spec.Volumes {
		if v.Name == mutate.VolumeName {
			out = append(out, v)
		}
	}
	return out
}

func tokenMounts(c corev1.Container) int {
	n := 0
	for _, m := range c.VolumeMounts {
		if m.Name == mutate.VolumeName {
			n++
		}
	}
	return n
}

// assertIdentity checks the ServiceAccount, Role and RoleBinding of sa exist
// in ns exactly as the builders make them.
func assertIdentity(t *testing.T, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	var gotSA corev1.ServiceAccount
	if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: sa}, &gotSA); err != nil {
		t.Fatalf("ServiceAccount %s/%s: %v", ns, sa, err)
	}
	var role rbacv1.Role
	if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: rbac.Name(sa)}, &role); err != nil {
		t.Fatalf("Role: %v", err)
	}
	if diff := cmp.Diff(rbac.Role(ns, sa).Rules, role.Rules); diff != "" || !rbac.IsManaged(&role) {
		t.Errorf("Role rules (-want +got):\n%s\nlabels: %v", diff, role.Labels)
	}
	var rb rbacv1.RoleBinding
	if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: rbac.Name(sa)}, &rb); err != nil {
		t.Fatalf("RoleBinding: %v", err)
	}
	want := rbac.RoleBinding(ns, sa)
	if diff := cmp.Diff(want.Subjects, rb.Subjects); diff != "" || rb.RoleRef != want.RoleRef || !rbac.IsManaged(&rb) {
		t.Errorf("RoleBinding subjects (-want +got):\n%s\nroleRef: %+v labels: %v", diff, rb.RoleRef, rb.Labels)
	}
}

func assertNoIdentity(t *testing.T, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		name := rbac.Name(sa)
		if _, isSA := obj.(*corev1.ServiceAccount); isSA {
			name = sa
		}
		err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
		if !apierrors.IsNotFound(err) {
			t.Errorf("%T %s/%s: want NotFound, got %v", obj, ns, name, err)
		}
	}
}

func TestServiceAccountPluginRejectsMissingAccountBeforeTheWebhook(t *testing.T) {
	ns := namespace(t, true)
	p := pod(ns, "missing-sa", classic("ghost"))
	p.Spec.ServiceAccountName = "ghost"
	err := env.Admin.Create(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "error looking up service account") {
		t.Fatalf("want the ServiceAccount plugin's rejection, got %v", err)
	}
	// The webhook never saw the pod, so it ensured nothing.
	assertNoIdentity(t, ns, "ghost")
}

func TestClassicFlow(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	p := pod(ns, "web", classic("nginx"))
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.ServiceAccountName != "nginx" {
		t.Errorf("serviceAccountName = %q, want nginx", p.Spec.ServiceAccountName)
	}
	vols := tokenVolumes(p)
	if len(vols) != 1 {
		t.Fatalf("token volumes: %+v", p.Spec.Volumes)
	}
	src := vols[0].Projected.Sources
	if len(src) != 1 || src[0].ServiceAccountToken.Audience != "vault" || *src[0].ServiceAccountToken.ExpirationSeconds != 7200 || src[0].ServiceAccountToken.Path != "vault-token" {
		t.Errorf("projection: %+v", src)
	}
	for _, c := range p.Spec.Containers {
		if tokenMounts(c) != 1 {
			t.Errorf("container %s: %d token mounts", c.Name, tokenMounts(c))
		}
	}
	if !strings.Contains(p.Annotations[mutate.AnnotationStatus], `"serviceAccount":"nginx"`) {
		t.Errorf("status annotation: %q", p.Annotations[mutate.AnnotationStatus])
	}
	assertIdentity(t, ns, "nginx")
}

// TestAccountCanMintOnlyItsOwnTokens uses a token of the ServiceAccount the
// webhook ensured and asks for tokens as that account.
func TestAccountCanMintOnlyItsOwnTokens(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	if err := env.Admin.Create(ctx, pod(ns, "web", classic("minter"))); err != nil {
		t.Fatal(err)
	}
	adminCS := kubernetes.NewForConfigOrDie(env.Config)
	tr, err := adminCS.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "minter", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	asSA := kubernetes.NewForConfigOrDie(&rest.Config{Host: env.Config.Host, TLSClientConfig: rest.TLSClientConfig{CAData: env.Config.CAData}, BearerToken: tr.Status.Token})
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}}}
	if _, err := asSA.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "minter", req, metav1.CreateOptions{}); err != nil {
		t.Errorf("the account cannot mint its own token: %v", err)
	}
	if _, err := asSA.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", req, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("minting a token for another account: want Forbidden, got %v", err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)

	// A new ServiceAccount cannot be dry-run: the webhook writes nothing, so
	// the ServiceAccount plugin's final check finds no account.
	err := env.Admin.Create(ctx, pod(ns, "dry", classic("dryrun")), client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "error looking up service account") {
		t.Errorf("dry-run with a new account: want the plugin's lookup error, got %v", err)
	}
	assertNoIdentity(t, ns, "dryrun")

	// Without an account the dry-run pod comes back mutated and nothing is stored.
	p := pod(ns, "dry", map[string]string{mutate.AnnotationAudience: "vault"})
	if err := env.Admin.Create(ctx, p, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if len(tokenVolumes(p)) != 1 {
		t.Errorf("dry-run pod not mutated: %+v", p.Spec.Volumes)
	}
	if err := env.Admin.Get(ctx, client.ObjectKeyFromObject(p), &corev1.Pod{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run pod was stored: %v", err)
	}
}

func TestGenerateNamePod(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	p := pod(ns, "", classic("gen"))
	p.GenerateName = "web-"
	if err := env.Admin.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Name, "web-") || len(tokenVolumes(p)) != 1 || p.Spec.ServiceAccountName != "gen" {
		t.Errorf("generateName pod: name %q, volumes %+v, sa %q", p.Name, p.Spec.Volumes, p.Spec.ServiceAccountName)
	}
	assertIdentity(t, ns, "gen")
}

func TestNoServiceAccountInjectsVolumeOnlyAndWarns(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	c, w := env.AdminWithWarnings(t)
	p := pod(ns, "plain", map[string]string{mutate.AnnotationAudience: "vault"})
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if len(tokenVolumes(p)) != 1 || p.Spec.ServiceAccountName != "default" {
		t.Errorf("volume-only pod: volumes %+v, sa %q", p.Spec.Volumes, p.Spec.ServiceAccountName)
	}
	for _, obj := range []client.Object{&rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		if err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: rbac.Name("default")}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T default-create-token: want NotFound, got %v", obj, err)
		}
	}
	msgs := w.Take()
	joined := strings.Join(msgs, "\n")
	if !strings.Contains(joined, "no Role or RoleBinding is ensured") || !strings.Contains(joined, "expire after 1h (the default)") {
		t.Errorf("warnings: %q", msgs)
	}
}

func TestUntouched(t *testing.T) {
	ctx := context.Background()
	optedIn := namespace(t, true)
	notIn := namespace(t, false)
	optedOut := pod(optedIn, "opted-out", classic("optedout"))
	optedOut.Labels = map[string]string{mutate.LabelInject: mutate.InjectDisabled}
	for _, p := range []*corev1.Pod{
		pod(notIn, "not-opted-in", classic("outside")),
		pod(optedIn, "no-annotation", map[string]string{"other": "x"}),
		optedOut,
	} {
		if err := env.Admin.Create(ctx, p); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if len(tokenVolumes(p)) != 0 || p.Annotations[mutate.AnnotationStatus] != "" || p.Spec.ServiceAccountName != "default" {
			t.Errorf("%s was mutated: %+v", p.Name, p.Spec)
		}
	}
	assertNoIdentity(t, notIn, "outside")
	assertNoIdentity(t, optedIn, "optedout")
}

// TestConcurrentPodsOneNewAccount creates 50 pods naming one new account at
// once: all are admitted and the account's objects are created once each.
func TestConcurrentPodsOneNewAccount(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	const n = 50
	before := writes(t)
	// Every create counts, AlreadyExists included: the burst shares one
	// ensure, and pods that come as it ends join it until the caches have
	// caught up.
	allBefore := testenv.Counter(t, "token_projector_api_writes_total", nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pod(ns, "", classic("burst"))
			p.GenerateName = "burst-"
			errs <- env.Admin.Create(ctx, p)
			_ = i
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var pods corev1.PodList
	if err := env.Admin.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	mutated := 0
	for i := range pods.Items {
		if len(tokenVolumes(&pods.Items[i])) == 1 && pods.Items[i].Spec.ServiceAccountName == "burst" {
			mutated++
		}
	}
	if mutated != n {
		t.Errorf("%d of %d pods mutated", mutated, n)
	}
	assertIdentity(t, ns, "burst")
	if got := writes(t) - before; got != 3 {
		t.Errorf("API creates for one new account under a burst of %d pods: %v, want 3", n, got)
	}
	if got := testenv.Counter(t, "token_projector_api_writes_total", nil) - allBefore; got != 3 {
		t.Errorf("API writes of any result for one new account under a burst of %d pods: %v, want 3", n, got)
	}
}

// TestRecreatedFromOwnOutput creates a pod from the webhook's own output, as
// "kubectl get -o yaml | kubectl create -f -" does: nothing is duplicated.
func TestRecreatedFromOwnOutput(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	first := pod(ns, "first", classic("again"))
	if err := env.Admin.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "second", Annotations: first.Annotations},
		Spec:       *first.Spec.DeepCopy(),
	}
	if err := env.Admin.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	if len(tokenVolumes(second)) != 1 {
		t.Errorf("token volumes: %d", len(tokenVolumes(second)))
	}
	for _, c := range second.Spec.Containers {
		if tokenMounts(c) != 1 {
			t.Errorf("container %s: %d token mounts", c.Name, tokenMounts(c))
		}
	}
	if diff := cmp.Diff(first.Spec.Volumes, second.Spec.Volumes); diff != "" {
		t.Errorf("volumes differ from the first pod's (-first +second):\n%s", diff)
	}
}
