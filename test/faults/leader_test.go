package faults

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/token-projector/token-projector/pkg/admission"
	"github.com/token-projector/token-projector/test/testenv"
)

// TestOnlyTheLeaderReconcilesBothAdmit runs two replicas of the binary with
// --leader-elect, bound by the shipped RBAC (the Lease Role included). Both
// admit pods; a deleted RoleBinding of an admitted pod is restored by one of
// them only, by their own counts; when that one stops, the other takes over.
func TestOnlyTheLeaderReconcilesBothAdmit(t *testing.T) {
	ctx := context.Background()
	dir, bin, kubeconfig := buildBinary(t)
	elect := []string{"--leader-elect", "--leader-election-namespace", testenv.ReleaseNamespace}
	// a serves kube-apiserver; b another port, reached directly.
	a := startProcess(t, bin, kubeconfig, filepath.Join(dir, "a.log"), elect...)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	b := startProcess(t, bin, kubeconfig, filepath.Join(dir, "b.log"), append(elect, "--webhook-port", strconv.Itoa(port))...)
	waitAdmitting(t)

	ns := namespace(t)
	if err := env.Admin.Create(ctx, pod(ns, "elected")); err != nil {
		t.Fatalf("admission through kube-apiserver (replica a): %v", err)
	}
	if resp := admitDirect(t, port, ns, "direct"); !resp.Allowed || len(resp.Patch) == 0 {
		t.Fatalf("replica b did not admit: %+v", resp.Result)
	}
	if !complete(t, ns, "direct") {
		t.Error("replica b admitted without ensuring the identity")
	}

	restored := func(p *webhookProcess) float64 { return p.counter(t, "token_projector_restored_total", "") }
	rb := testenv.Identity(ns, "elected")[2]
	if err := env.Admin.Delete(ctx, rb); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the RoleBinding is restored", time.Minute, func() bool { return complete(t, ns, "elected") })
	byA, byB := restored(a), restored(b)
	if (byA > 0) == (byB > 0) {
		t.Fatalf("restored by a: %v, by b: %v; want exactly one replica reconciling", byA, byB)
	}
	leader, other := a, b
	if byB > 0 {
		leader, other = b, a
	}

	leader.stop(t)
	if err := env.Admin.Delete(ctx, testenv.Identity(ns, "elected")[2]); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the other replica takes over and restores it", time.Minute, func() bool { return complete(t, ns, "elected") })
	if restored(other) == 0 {
		t.Errorf("restored, but not by the replica that took over")
	}
}

// stop sends SIGTERM, as a rollout does, and waits for the process to go;
// the leader releases its Lease on the way out.
func (p *webhookProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("the webhook exited on SIGTERM with %v, want a clean shutdown", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the webhook did not stop within a minute of SIGTERM")
	}
}

// admitDirect posts an AdmissionReview for a pod naming serviceAccount to
// the replica listening on port, as kube-apiserver would.
func admitDirect(t *testing.T, port int, ns, serviceAccount string) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(pod(ns, serviceAccount))
	if err != nil {
		t.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("direct-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: ns,
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(servingCA.pem)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d%s", port, admission.PodsPath), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("replica's answer (%s): %v", resp.Status, err)
	}
	return out.Response
}
