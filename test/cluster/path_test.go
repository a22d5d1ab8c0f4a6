package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testClusterIPPath: kube-apiserver reaches the webhook the way most
// clusters have it do: through the webhook Service's cluster IP, which
// kube-proxy translates to the ready pods. Its configuration names the
// Service (no URL), kube-apiserver runs without --enable-aggregator-routing
// (which would make it dial the endpoints itself), and kube-proxy's rules in
// the node's namespace hold the Service's cluster IP. The scenarios after
// this one (upgrade, eviction) therefore run over that path.
func testClusterIPPath(t *testing.T, e *env) {
	if args := e.Args("kube-apiserver"); len(args) == 0 || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--enable-aggregator-routing") }) {
		t.Fatalf("kube-apiserver's command line %v: want it running, without --enable-aggregator-routing", args)
	}
	cfgs, err := e.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(e.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
	if err != nil || len(cfgs.Items) != 1 {
		t.Fatalf("the release's webhook configuration: %v (%d found)", err, len(cfgs.Items))
	}
	for _, w := range cfgs.Items[0].Webhooks {
		if s := w.ClientConfig.Service; s == nil || w.ClientConfig.URL != nil || s.Namespace != releaseNS || s.Name != release+"-webhook" {
			t.Fatalf("webhook %s calls %+v, want the Service %s/%s-webhook", w.Name, w.ClientConfig, releaseNS, release)
		}
	}
	svc, err := e.Client.CoreV1().Services(releaseNS).Get(e.ctx, release+"-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == "None" {
		t.Fatalf("the webhook Service has no cluster IP (%q)", svc.Spec.ClusterIP)
	}
	e.waitFor(t, "kube-proxy's rules for the webhook Service's cluster IP "+svc.Spec.ClusterIP, time.Minute, func(context.Context) (bool, error) {
		return e.ProxiesService(svc.Spec.ClusterIP)
	})
	summary.path.Store("clusterip")
}
