package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// maxDenialLength bounds what a denial echoes: a 10 000-character or
// 300 KiB value comes back truncated, not whole.
const maxDenialLength = 1024

// TestHostileInputs creates, through kube-apiserver, one pod for each
// hostile input of the reliability issue. Each must come back as a denial
// (403, never a 500 and never a panic) that names the annotation or field,
// echoes the value (truncated when long) and says what is accepted; no pod
// is stored and nothing is ensured for it.
func TestHostileInputs(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, true)
	long := strings.Repeat("a", mutate.MaxServiceAccountName+1)
	// An account too long for <sa>-create-token, that exists, named in spec.
	if err := env.Admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: long}}); err != nil {
		t.Fatal(err)
	}
	const sa = "hostile"
	withSA := func(extra map[string]string) map[string]string {
		m := map[string]string{mutate.AnnotationAudience: "vault", mutate.AnnotationServiceAccount: sa}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	expiry := func(v string) map[string]string { return withSA(map[string]string{mutate.AnnotationExpiration: v}) }
	audience := func(v string) map[string]string { return withSA(map[string]string{mutate.AnnotationAudience: v}) }
	account := func(v string) map[string]string { return withSA(map[string]string{mutate.AnnotationServiceAccount: v}) }
	mountPath := func(v string) map[string]string { return withSA(map[string]string{mutate.AnnotationMountPath: v}) }
	const expiryAccepted = "whole seconds (7200) or a Go duration (2h) from 10m to 24h"

	for _, tc := range []struct {
		name    string
		ann     map[string]string
		edit    func(*corev1.Pod)
		message []string
	}{
		{"expiry 0", expiry("0"), nil, []string{mutate.AnnotationExpiration, `"0"`, expiryAccepted}},
		{"expiry -1", expiry("-1"), nil, []string{mutate.AnnotationExpiration, `"-1"`, expiryAccepted}},
		{"expiry 599", expiry("599"), nil, []string{mutate.AnnotationExpiration, `"599"`, expiryAccepted}},
		{"expiry 1e9", expiry("1e9"), nil, []string{mutate.AnnotationExpiration, `"1e9"`, expiryAccepted}},
		{"expiry overflow", expiry("9999999999999999999"), nil, []string{mutate.AnnotationExpiration, `"9999999999999999999"`, expiryAccepted}},
		{"expiry bad unit", expiry("2h30x"), nil, []string{mutate.AnnotationExpiration, `"2h30x"`, expiryAccepted}},
		{"expiry empty", expiry(""), nil, []string{mutate.AnnotationExpiration, `""`, expiryAccepted}},
		{"audience empty", audience(""), nil, []string{mutate.AnnotationAudience, `""`, "one or more non-empty audiences"}},
		{"audience whitespace", audience(" \t "), nil, []string{mutate.AnnotationAudience, `" \t "`, "one or more non-empty audiences"}},
		{"audience 10000 characters", audience(strings.Repeat("v", 10000)), nil,
			[]string{mutate.AnnotationAudience, `"` + strings.Repeat("v", 80) + `"... (10000 bytes)`, fmt.Sprintf("audiences of at most %d characters", mutate.MaxAudienceLength)}},
		{"audience duplicate", audience("vault,sts,vault"), nil, []string{mutate.AnnotationAudience, `"vault,sts,vault"`, `each audience once; "vault" is listed twice`}},
		{"audiences with one file name", audience("https://Vault,vault"), nil,
			[]string{mutate.AnnotationAudience, `"https://Vault,vault"`, `"https://Vault" and "vault" both map to vault-token`}},
		{"account invalid", account("Not_Valid"), nil, []string{mutate.AnnotationServiceAccount, `"Not_Valid"`, "lower case letters, digits"}},
		{"account too long", account(long), nil,
			[]string{mutate.AnnotationServiceAccount, `"` + long[:80] + `"... (241 bytes)`, "at most 240 characters, so that <name>-create-token is a valid name"}},
		{"spec account too long", map[string]string{mutate.AnnotationAudience: "vault"}, func(p *corev1.Pod) { p.Spec.ServiceAccountName = long },
			[]string{"spec.serviceAccountName", `"` + long[:80] + `"... (241 bytes)`, "at most 240 characters"}},
		{"account default", account("default"), nil, []string{mutate.AnnotationServiceAccount, `"default"`, "a dedicated ServiceAccount name"}},
		{"mount path relative", mountPath("tokens"), nil, []string{mutate.AnnotationMountPath, `"tokens"`, "an absolute directory path other than / and without '..' elements"}},
		{"mount path with ..", mountPath("/var/run/../../etc"), nil, []string{mutate.AnnotationMountPath, `"/var/run/../../etc"`, "without '..' elements"}},
		{"mount path taken by the pod", withSA(nil), func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			p.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: mutate.DefaultMountPath}}
		}, []string{"containers[sidecar].volumeMounts", `"` + mutate.DefaultMountPath + `"`, "a mount path free for the token volume; volume cache"}},
		{"mount path taken by the ServiceAccount plugin", mountPath("/var/run/secrets/kubernetes.io/serviceaccount"), nil,
			[]string{"containers[app].volumeMounts", `"/var/run/secrets/kubernetes.io/serviceaccount"`, "a mount path free for the token volume"}},
		{"containers naming none", withSA(map[string]string{mutate.AnnotationContainers: "ghost,phantom"}), nil,
			[]string{mutate.AnnotationContainers, `"ghost,phantom"`, "a comma-separated list of this pod's containers: app, sidecar"}},
		{"audience annotation of 300 KiB", audience(strings.Repeat("v,", 150<<10)), nil,
			[]string{mutate.AnnotationAudience, "... (307200 bytes)", "at most 16 comma-separated audiences"}},
		{"annotations at the size limit", withSA(map[string]string{"example.com/large": strings.Repeat("x", 256<<10-150)}), nil,
			[]string{"metadata.annotations", " bytes\"", "annotations totalling at most 262144 bytes, including the"}},
		{"annotations over the size limit", withSA(map[string]string{"example.com/large": strings.Repeat("x", 300<<10)}), nil,
			[]string{"metadata.annotations", " bytes\"", "annotations totalling at most 262144 bytes"}},
		{"our volume name with another source", withSA(nil), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: mutate.VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, []string{"spec.volumes", `"token-projector"`, "no volume named token-projector other than the one this webhook injects"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errored := testenv.Counter(t, "token_projector_admissions_total", map[string]string{"outcome": "errored"})
			panics := testenv.Counter(t, "controller_runtime_webhook_panics_total", nil)

			p := pod(ns, "", tc.ann)
			p.GenerateName = "hostile-"
			p.Labels = map[string]string{"case": "hostile"}
			if tc.edit != nil {
				tc.edit(p)
			}
			err := env.Admin.Create(ctx, p)
			if err == nil {
				t.Fatalf("pod admitted: %+v", p.Spec)
			}
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "denied the request") {
				t.Fatalf("want the webhook's denial (403), got: %v", err)
			}
			msg := err.Error()
			for _, want := range tc.message {
				if !strings.Contains(msg, want) {
					t.Errorf("denial does not contain %q:\n%s", want, msg)
				}
			}
			if len(msg) > maxDenialLength {
				t.Errorf("denial of %d bytes", len(msg))
			}
			if got := testenv.Counter(t, "token_projector_admissions_total", map[string]string{"outcome": "errored"}) - errored; got != 0 {
				t.Errorf("%v admissions errored (500)", got)
			}
			if got := testenv.Counter(t, "controller_runtime_webhook_panics_total", nil) - panics; got != 0 {
				t.Errorf("%v panics", got)
			}
		})
	}
	assertNoIdentity(t, ns, sa)
	var pods corev1.PodList
	if err := env.Admin.List(ctx, &pods, client.InNamespace(ns)); err != nil || len(pods.Items) != 0 {
		t.Errorf("pods stored: %d, %v", len(pods.Items), err)
	}
}

// TestForgedNamespaceMismatch posts a review straight to the webhook whose
// object claims another namespace than the request (kube-apiserver itself
// refuses such a pod before admission): it is denied, and nothing is created
// in either namespace.
func TestForgedNamespaceMismatch(t *testing.T) {
	requestNS, objectNS := namespace(t, true), namespace(t, true)
	resp := review(t, podReview(t, "forged-mismatch", requestNS, pod(objectNS, "forged", classic("mismatch"))))
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusForbidden ||
		!strings.Contains(resp.Result.Message, `metadata.namespace "`+objectNS+`" differs from the namespace of the request "`+requestNS+`"`) {
		t.Errorf("want a denial naming both namespaces, got %+v", resp)
	}
	assertNoIdentity(t, requestNS, "mismatch")
	assertNoIdentity(t, objectNS, "mismatch")
}

// TestForgedReviewsWriteOnlyInRequestNamespace: a forged review can at most
// make the webhook do what a pod creation there would (ensure an identity in
// an opted-in namespace named by request.namespace); never elsewhere, never
// in a namespace that is not opted in or does not exist, never on dry-run.
func TestForgedReviewsWriteOnlyInRequestNamespace(t *testing.T) {
	ctx := context.Background()
	optedIn, notIn := namespace(t, true), namespace(t, false)
	noNS := pod("", "forged", classic("forged-only-here"))

	resp := review(t, podReview(t, "forged-opted-in", optedIn, noNS))
	if !resp.Allowed {
		t.Fatalf("forged review for an opted-in namespace: %+v", resp.Result)
	}
	dry := podReview(t, "forged-dry", notIn, noNS)
	dry.DryRun = ptr(true)
	for _, req := range []admissionv1.AdmissionRequest{
		podReview(t, "forged-not-in", notIn, noNS),
		podReview(t, "forged-missing", "no-such-namespace", noNS),
		dry,
	} {
		if r := review(t, req); !r.Allowed || len(r.Patch) != 0 {
			t.Errorf("%s: allowed=%v patch=%s", req.UID, r.Allowed, r.Patch)
		}
	}
	var sas corev1.ServiceAccountList
	if err := env.Admin.List(ctx, &sas); err != nil {
		t.Fatal(err)
	}
	for _, s := range sas.Items {
		if s.Name == "forged-only-here" && s.Namespace != optedIn {
			t.Errorf("ServiceAccount created in %s, outside the request's namespace %s", s.Namespace, optedIn)
		}
	}
	assertIdentity(t, optedIn, "forged-only-here")
}

func podReview(t *testing.T, uid, namespace string, p *corev1.Pod) admissionv1.AdmissionRequest {
	t.Helper()
	raw, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err = yaml.YAMLToJSON(raw); err != nil {
		t.Fatal(err)
	}
	return admissionv1.AdmissionRequest{
		UID: k8stypes.UID("uid-" + uid), Namespace: namespace, Operation: admissionv1.Create,
		Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Object:   runtime.RawExtension{Raw: raw},
	}
}
