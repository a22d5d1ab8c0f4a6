package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/admission"
)

// keyOf is client.ObjectKeyFromObject, shorter.
func keyOf(o client.Object) client.ObjectKey { return client.ObjectKeyFromObject(o) }

// review posts an AdmissionReview straight to the webhook, as anyone on the
// pod network could, bypassing kube-apiserver and its selectors.
func review(t *testing.T, req admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := webhookCaller(1).post(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// caller posts AdmissionReviews straight to the webhook's port on
// 127.0.0.1, over TLS it trusts through the serving CA, with no client
// certificate.
type caller struct {
	hc  *http.Client
	url string
}

// webhookCaller is a caller that keeps up to conns connections open.
func webhookCaller(conns int) caller {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.WebhookInstallOptions.LocalServingCAData)
	return caller{
		hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: conns,
		}},
		url: fmt.Sprintf("https://%s:%d%s", env.WebhookInstallOptions.LocalServingHost, env.WebhookInstallOptions.LocalServingPort, admission.PodsPath),
	}
}

// post sends one review and returns the webhook's response to it.
func (c caller) post(req admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req,
	})
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Post(c.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Response == nil || out.Response.UID != req.UID {
		return nil, fmt.Errorf("response does not echo the request UID: %+v", out.Response)
	}
	return out.Response, nil
}

// TestForgedRequestForNamespaceNotOptedIn sends the webhook a well-formed
// review for a namespace that is not opted in: it must neither patch nor write.
func TestForgedRequestForNamespaceNotOptedIn(t *testing.T) {
	notIn := namespace(t, false)
	p := pod(notIn, "forged", classic("forged"))
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	resp := review(t, admissionv1.AdmissionRequest{
		UID: "forged-1", Namespace: notIn, Operation: admissionv1.Create,
		Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Object:   runtime.RawExtension{Raw: raw},
	})
	if !resp.Allowed || len(resp.Patch) != 0 {
		t.Errorf("forged request for %s: allowed=%v patch=%s", notIn, resp.Allowed, resp.Patch)
	}
	assertNoIdentity(t, notIn, "forged")
	var sas corev1.ServiceAccountList
	if err := env.Admin.List(context.Background(), &sas, client.InNamespace(notIn)); err != nil || len(sas.Items) != 1 {
		t.Errorf("service accounts in %s: %d (want only default), %v", notIn, len(sas.Items), err)
	}
}
