package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/cluster"
)

const (
	loadNS   = "load"
	otherNS  = "not-opted-in"
	podsHook = "pods.token-projector.io"
)

// podNames are the names of pods.
func podNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	return names
}

// testUpgrade: `helm upgrade` from the first release's chart to the
// second's, from the registry, replaces both replicas (the image's digest
// changed) while pods are created without pause; every creation succeeds
// and is injected. The release first runs with a Lease
// other than the one the chart names (previousLease, as a release installed
// before the per-release Lease): the upgrade keeps electing through it, and
// at no moment do two Leases have a holder, that is two reconcilers lead.
func testUpgrade(t *testing.T, e *env) {
	e.namespace(t, loadNS, true)
	e.electOnPreviousLease(t)
	before := podNames(e.webhookPods(t))
	l := startLoad(t, e.ctx, e.Client, loadNS)
	l.waitCreated(t, e, 20)
	leaders := e.watchLeaders(t)
	e.helm(t, "upgrade", release, e.pub.chart, "--version", e.pub.second.ChartVersion, "--plain-http",
		"--namespace", releaseNS, "--wait", "--timeout", "5m")
	e.waitWebhookReady(t, 2)
	e.checkRunsRelease(t, e.pub.second)
	l.waitCreated(t, e, 20)
	failed := l.stop(t)
	summary.upgrade.finish(failed)
	leaders.check(t)
	if d, err := e.Client.AppsV1().Deployments(releaseNS).Get(e.ctx, release, metav1.GetOptions{}); err != nil {
		t.Error(err)
	} else if got := leaseOf(d); got != previousLease {
		t.Errorf("the upgraded Deployment elects through %q, want the Lease it ran with, %q", got, previousLease)
	}
	for _, name := range podNames(e.webhookPods(t)) {
		for _, old := range before {
			if name == old {
				t.Errorf("webhook pod %s survived the upgrade: the pod template did not change", name)
			}
		}
	}
	if failed != 0 {
		t.Errorf("%d pod creations failed during the upgrade, want 0", failed)
	}
}

// testEviction: draining the node evicts one webhook pod under load
// without failing a creation; evicting the other while the first's
// replacement cannot be scheduled would leave no ready replica, and the
// PodDisruptionBudget refuses it.
func testEviction(t *testing.T, e *env) {
	pods := e.webhookPods(t)
	if len(pods) != 2 {
		t.Fatalf("%d webhook pods, want 2", len(pods))
	}
	l := startLoad(t, e.ctx, e.Client, loadNS)
	l.waitCreated(t, e, 20)
	// Cordoned, as a drain begins: the replacement stays Pending, so the
	// budget stays spent.
	e.kubectl(t, "cordon", cluster.NodeName)
	uncordoned := false
	uncordon := func() {
		if !uncordoned {
			e.kubectl(t, "uncordon", cluster.NodeName)
			uncordoned = true
		}
	}
	defer uncordon()
	evict := func(p corev1.Pod) error {
		return e.Client.PolicyV1().Evictions(releaseNS).Evict(e.ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: releaseNS}})
	}
	if err := evict(pods[0]); err != nil {
		t.Fatalf("evicting webhook pod %s with both replicas ready: %v", pods[0].Name, err)
	}
	e.waitFor(t, "the evicted webhook pod to be gone", 2*time.Minute, func(ctx context.Context) (bool, error) {
		_, err := e.Client.CoreV1().Pods(releaseNS).Get(ctx, pods[0].Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	l.waitCreated(t, e, 20)
	err := evict(pods[1])
	if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "disruption budget") {
		t.Errorf("evicting the last ready webhook pod: got %v, want a refusal by the PodDisruptionBudget (429)", err)
	}
	uncordon()
	e.waitWebhookReady(t, 2)
	l.waitCreated(t, e, 20)
	failed := l.stop(t)
	summary.eviction.finish(failed)
	if failed != 0 {
		t.Errorf("%d pod creations failed during the eviction, want 0", failed)
	}
}

// pendingPod is a pod that stays Pending, annotated if annotate.
func pendingPod(name string, annotate bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"token-projector.io/test-node": "none"},
			Containers:   []corev1.Container{{Name: "app", Image: checkImage, ImagePullPolicy: corev1.PullNever}},
		},
	}
	if annotate {
		p.Annotations = map[string]string{mutate.AnnotationAudience: "vault"}
	}
	return p
}

// testOutage: with no webhook replica, only annotated pods in opted-in
// namespaces are refused, with kube-apiserver's error; other pods and the
// controllers' writes to annotated workloads go on.
func testOutage(t *testing.T, e *env) {
	e.namespace(t, otherNS, false)
	e.kubectl(t, "scale", "deployment", "-n", releaseNS, "-l", "app.kubernetes.io/instance="+release, "--replicas=0")
	e.waitFor(t, "no webhook pod", 2*time.Minute, func(context.Context) (bool, error) {
		return len(e.webhookPods(t)) == 0, nil
	})
	defer func() {
		e.kubectl(t, "scale", "deployment", "-n", releaseNS, "-l", "app.kubernetes.io/instance="+release, "--replicas=2")
		e.waitWebhookReady(t, 2)
	}()
	create := func(ns string, p *corev1.Pod) (*corev1.Pod, error) {
		return e.Client.CoreV1().Pods(ns).Create(e.ctx, p, metav1.CreateOptions{})
	}
	_, err := create(loadNS, pendingPod("outage-annotated", true))
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "`+podsHook+`"`) {
		t.Errorf("an annotated pod in an opted-in namespace: got %v, want kube-apiserver's failed calling webhook %q", err, podsHook)
	}
	if _, err := create(loadNS, pendingPod("outage-plain", false)); err != nil {
		t.Errorf("an unannotated pod in an opted-in namespace: %v", err)
	}
	if p, err := create(otherNS, pendingPod("outage-elsewhere", true)); err != nil {
		t.Errorf("an annotated pod in a namespace not opted in: %v", err)
	} else if p.Annotations[mutate.AnnotationStatus] != "" {
		t.Errorf("an annotated pod in a namespace not opted in was injected")
	}
	// The deployment controller scales the annotated Deployment's
	// ReplicaSet: an UPDATE of an annotated workload that asks for nothing
	// new, which must never depend on the webhook.
	e.kubectl(t, "scale", "deployment", "-n", tokensNS, "minter", "--replicas=2")
	deadline := time.Now().Add(time.Minute)
	for !e.replicaSetScaled(t, "minter", 2) {
		if time.Now().After(deadline) {
			t.Errorf("the deployment controller did not scale minter's ReplicaSet to 2 within a minute; the write it sends: %v", e.scaleReplicaSet(t, "minter", 2))
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.kubectl(t, "scale", "deployment", "-n", tokensNS, "minter", "--replicas=1")
}

// testUninstall: `helm uninstall` leaves no webhook configuration, so
// annotated pods in opted-in namespaces are admitted again (unmutated).
func testUninstall(t *testing.T, e *env) {
	e.helm(t, "uninstall", release, "--namespace", releaseNS, "--wait", "--timeout", "3m")
	cfgs, err := e.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs.Items {
		for _, w := range c.Webhooks {
			if s := w.ClientConfig.Service; s != nil && s.Namespace == releaseNS {
				t.Errorf("webhook %s of %s still calls %s/%s", w.Name, c.Name, s.Namespace, s.Name)
			}
		}
	}
	if _, err := e.Client.CoreV1().Pods(loadNS).Create(e.ctx, pendingPod("after-uninstall", true), metav1.CreateOptions{}); err != nil {
		t.Errorf("an annotated pod in an opted-in namespace after uninstall: %v", err)
	}
}

// replicaSetScaled reports whether a ReplicaSet of the Deployment named
// app (its pods labelled app=<app>) asks for n replicas.
func (e *env) replicaSetScaled(t *testing.T, app string, n int32) bool {
	t.Helper()
	rss, err := e.Client.AppsV1().ReplicaSets(tokensNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		if rs.Spec.Replicas != nil && *rs.Spec.Replicas == n {
			return true
		}
	}
	return false
}

// scaleReplicaSet sends what the deployment controller sends to scale the
// Deployment app's ReplicaSet (an UPDATE of the ReplicaSet), to show why
// it failed.
func (e *env) scaleReplicaSet(t *testing.T, app string, n int32) error {
	t.Helper()
	rss, err := e.Client.AppsV1().ReplicaSets(tokensNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil || len(rss.Items) == 0 {
		return fmt.Errorf("no ReplicaSet of %s: %w", app, err)
	}
	rs := rss.Items[0]
	rs.Spec.Replicas = &n
	_, err = e.Client.AppsV1().ReplicaSets(tokensNS).Update(e.ctx, &rs, metav1.UpdateOptions{})
	return err
}
