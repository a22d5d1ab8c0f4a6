package admission_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	tpadmission "github.com/token-projector/token-projector/pkg/admission"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzAdmissionReview from pkg/mutate's golden pods and the hostile reviews below")

const seedDir = "testdata/fuzz/FuzzAdmissionReview"

// maxSeed leaves out golden pods too large to mutate quickly (the 256 KiB
// annotations case): the fuzzer spends its time on structure, not bulk.
const maxSeed = 16 << 10

// TestSeedCorpus checks that the seed corpus holds every golden pod of
// pkg/mutate and every hostile review below, so that the seeds (which go test
// also runs as plain test cases) cannot silently fall behind; -update-seeds
// rewrites them.
func TestSeedCorpus(t *testing.T) {
	seeds := seedReviews(t)
	if *updateSeeds {
		if err := os.RemoveAll(seedDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(seedDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range seeds {
		file := filepath.Join(seedDir, name)
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(body)) + ")\n"
		if *updateSeeds {
			if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale (run go test ./pkg/admission -run TestSeedCorpus -update-seeds): %v", file, err)
		}
	}
}

// seedReviews are AdmissionReview bodies: every golden pod as a CREATE in
// the opted-in namespace, then reviews that are forged, malformed or
// unusual in the ways kube-apiserver never sends but an attacker might.
func seedReviews(t *testing.T) map[string][]byte {
	t.Helper()
	seeds := map[string][]byte{}
	golden := tpadmission.GoldenPods(t)
	for name, pod := range golden {
		if len(pod) > maxSeed {
			continue
		}
		seeds["golden-"+name] = reviewBody("v1", "uid-"+name, fuzzOptedIn, "CREATE", `{"group":"","version":"v1","kind":"Pod"}`, pod, "")
	}
	classic := golden["classic"]
	const podKind = `{"group":"","version":"v1","kind":"Pod"}`
	annotated := func(extra string) string {
		return `{"metadata":{"generateName":"web-","annotations":{"token-projector.io/audience":"vault","token-projector.io/service-account":"nginx"` + extra +
			`}},"spec":{"containers":[{"name":"app","image":"nginx"}]}}`
	}
	// A pod asking for VAULT_TOKEN_FILE whose app container's env is env.
	withEnv := func(env string) string {
		return `{"metadata":{"annotations":{"token-projector.io/audience":"vault","token-projector.io/token-file-env":"vault=VAULT_TOKEN_FILE"}},` +
			`"spec":{"containers":[{"name":"app","env":` + env + `},{"name":"sidecar"}]}}`
	}
	// A pod asking for a token whose volumes are volumes.
	withVolumes := func(volumes string) string {
		return `{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":[{"name":"app"}],"volumes":` + volumes + `}}`
	}
	// The same pod with its annotations after its spec, as a client may
	// order them: env is decoded only once the annotation has been read.
	specFirst := func(env, annotations string) string {
		return `{"spec":{"containers":[{"name":"app","env":` + env + `},{"name":"sidecar"}]},` +
			`"metadata":{"annotations":{"token-projector.io/audience":"vault"` + annotations + `}}}`
	}
	const asksEnv = `,"token-projector.io/token-file-env":"vault=VAULT_TOKEN_FILE"`
	for name, body := range map[string][]byte{
		"env-after-spec-conflicting": reviewBody("v1", "u29", fuzzOptedIn, "CREATE", podKind, specFirst(`[{"name":"VAULT_TOKEN_FILE","value":"/x"}]`, asksEnv), ""),
		"env-after-spec-identical":   reviewBody("v1", "u30", fuzzOptedIn, "CREATE", podKind, specFirst(`[{"name":"VAULT_TOKEN_FILE","value":"/var/run/secrets/tokens/vault-token"}]`, asksEnv), ""),
		"env-after-spec-not-a-list":  reviewBody("v1", "u31", fuzzOptedIn, "CREATE", podKind, specFirst(`{"name":"VAULT_TOKEN_FILE"}`, asksEnv), ""),
		"env-not-asked-not-a-list":   reviewBody("v1", "u32", fuzzOptedIn, "CREATE", podKind, specFirst(`{"name":"VAULT_TOKEN_FILE"}`, ""), ""),
		"env-not-asked-wrong-types":  reviewBody("v1", "u33", fuzzOptedIn, "CREATE", podKind, specFirst(`[{"name":7,"valueFrom":"x"}]`, ""), ""),
		"env-spaced": []byte(strings.Replace(string(reviewBody("v1", "u34", fuzzOptedIn, "CREATE", podKind,
			specFirst(`[{"name":"VAULT_TOKEN_FILE","value":"/x"}]`, asksEnv), "")), `"env":`, "\"env\" \t\r\n: \n ", 1)),
		"env-null": reviewBody("v1", "u23", fuzzOptedIn, "CREATE", podKind, withEnv(`null`), ""),
		// Volumes: read by name, the token volume whole, whatever the
		// order of their members.
		"volume-name-last":          reviewBody("v1", "u35", fuzzOptedIn, "CREATE", podKind, withVolumes(`[{"emptyDir":{},"name":"cache"}]`), ""),
		"volume-ours-name-last":     reviewBody("v1", "u36", fuzzOptedIn, "CREATE", podKind, withVolumes(`[{"projected":{"sources":[{"serviceAccountToken":{"audience":"vault","expirationSeconds":3600,"path":"vault-token"}}],"defaultMode":420},"name":"token-projector"}]`), ""),
		"volume-ours-not-an-object": reviewBody("v1", "u37", fuzzOptedIn, "CREATE", podKind, withVolumes(`[{"name":"token-projector","projected":7}]`), ""),
		"volume-other-wrong-types":  reviewBody("v1", "u38", fuzzOptedIn, "CREATE", podKind, withVolumes(`[{"name":"cache","configMap":"x"},null]`), ""),
		"volume-duplicate-name":     reviewBody("v1", "u39", fuzzOptedIn, "CREATE", podKind, withVolumes(`[{"name":"cache","name":"token-projector"}]`), ""),
		"volume-capitalised-name":   reviewBody("v1", "u40", fuzzOptedIn, "CREATE", podKind, withVolumes(`[{"Name":"token-projector","projected":{}}]`), ""),
		// the one pass's member reader refuses what it would have to judge
		// more finely than its types (nulls, wrong kinds, repeated names):
		// those reviews take the framework's path; escaped names are read.
		"fields-null-label":           reviewBody("v1", "u41", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"labels":{"app":null},"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":[{"name":"app"}]}}`, ""),
		"fields-labels-null":          reviewBody("v1", "u42", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"labels":null,"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":[{"name":"app"}]}}`, ""),
		"fields-metadata-null":        reviewBody("v1", "u43", fuzzOptedIn, "CREATE", podKind, `{"metadata":null,"spec":{"containers":[{"name":"app"}]}}`, ""),
		"fields-containers-null":      reviewBody("v1", "u44", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":null}}`, ""),
		"fields-container-not-object": reviewBody("v1", "u45", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":["app"]}}`, ""),
		"fields-spec-not-object":      reviewBody("v1", "u46", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"spec":[]}`, ""),
		"fields-metadata-twice":       reviewBody("v1", "u47", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"app"}]},"metadata":{"annotations":{"token-projector.io/audience":"vault"}}}`, ""),
		"fields-escaped-names":        reviewBody("v1", "u48", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io\/audience":"vault","token-projector.io\/service-account":"nginx\/x"}},"spec":{"containers":[{"name":"app"}]}}`, ""),
		"fields-empty":                reviewBody("v1", "u49", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"labels":{},"annotations":{"token-projector.io/audience":"vault"}},"spec":{"volumes":[],"initContainers":[],"containers":[{"name":"app","volumeMounts":[],"env":[]}]}}`, ""),
		// the review around the pod, read member by member too
		"envelope-full": []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u50","kind":{"group":"","version":"v1","kind":"Pod"},` +
			`"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},` +
			`"namespace":"` + fuzzOptedIn + `","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"1c5e","groups":["system:serviceaccounts","system:authenticated"],` +
			`"extra":{"authentication.kubernetes.io/credential-id":["JTI=5e2d"]}},"object":` + annotated("") + `,"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`),
		"envelope-dry-run":          []byte(strings.Replace(string(reviewBody("v1", "u51", fuzzOptedIn, "CREATE", podKind, annotated(""), "")), `"operation":`, `"dryRun":true,"operation":`, 1)),
		"envelope-null-members":     []byte(strings.Replace(string(reviewBody("v1", "u52", fuzzOptedIn, "CREATE", podKind, annotated(""), "")), `"operation":`, `"requestKind":null,"dryRun":null,"operation":`, 1)),
		"envelope-groups-null":      []byte(strings.Replace(string(reviewBody("v1", "u53", fuzzOptedIn, "CREATE", podKind, annotated(""), "")), `{"username":"admin"}`, `{"username":"admin","groups":null}`, 1)),
		"envelope-unknown-field":    []byte(strings.Replace(string(reviewBody("v1", "u54", fuzzOptedIn, "CREATE", podKind, annotated(""), "")), `"operation":`, `"future":{"a":[1,2]},"operation":`, 1)),
		"env-ours-value-from-null":  reviewBody("v1", "u24", fuzzOptedIn, "CREATE", podKind, withEnv(`[{"name":"VAULT_TOKEN_FILE","value":"/var/run/secrets/tokens/vault-token","valueFrom":null}]`), ""),
		"env-capitalised-name":      reviewBody("v1", "u25", fuzzOptedIn, "CREATE", podKind, withEnv(`[{"Name":"VAULT_TOKEN_FILE","value":"/x"}]`), ""),
		"env-duplicate-name":        reviewBody("v1", "u26", fuzzOptedIn, "CREATE", podKind, withEnv(`[{"name":"OTHER","name":"VAULT_TOKEN_FILE","value":"/x"}]`), ""),
		"env-not-a-list":            reviewBody("v1", "u27", fuzzOptedIn, "CREATE", podKind, withEnv(`{"name":"VAULT_TOKEN_FILE"}`), ""),
		"env-value-from-empty":      reviewBody("v1", "u28", fuzzOptedIn, "CREATE", podKind, withEnv(`[{"name":"VAULT_TOKEN_FILE","valueFrom":{}}]`), ""),
		"forged-namespace-mismatch": reviewBody("v1", "u1", fuzzOptedIn, "CREATE", podKind, strings.Replace(classic, `"namespace":"demo"`, `"namespace":"other"`, 1), ""),
		"forged-not-opted-in":       reviewBody("v1", "u2", fuzzNotOpted, "CREATE", podKind, classic, ""),
		"forged-unknown-namespace":  reviewBody("v1", "u3", "nowhere", "CREATE", podKind, annotated(""), ""),
		"no-request-namespace":      reviewBody("v1", "u4", "", "CREATE", podKind, annotated(""), ""),
		"update":                    reviewBody("v1", "u5", fuzzOptedIn, "UPDATE", podKind, annotated(""), ""),
		"delete":                    reviewBody("v1", "u6", fuzzOptedIn, "DELETE", podKind, "null", ""),
		"other-kind":                reviewBody("v1", "u7", fuzzOptedIn, "CREATE", `{"group":"apps","version":"v1","kind":"Deployment"}`, annotated(""), ""),
		"subresource":               reviewBody("v1", "u8", fuzzOptedIn, "CREATE", podKind, annotated(""), "status"),
		"dry-run":                   []byte(strings.Replace(string(reviewBody("v1", "u9", fuzzOptedIn, "CREATE", podKind, annotated(""), "")), `"operation"`, `"dryRun":true,"operation"`, 1)),
		"v1beta1":                   reviewBody("v1beta1", "u10", fuzzOptedIn, "CREATE", podKind, annotated(""), ""),
		"object-null":               reviewBody("v1", "u11", fuzzOptedIn, "CREATE", podKind, "null", ""),
		"object-string":             reviewBody("v1", "u12", fuzzOptedIn, "CREATE", podKind, `"pod"`, ""),
		"object-array":              reviewBody("v1", "u13", fuzzOptedIn, "CREATE", podKind, `[1,2]`, ""),
		"no-spec":                   reviewBody("v1", "u14", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io/audience":"vault"}}}`, ""),
		"capitalised-spec":          reviewBody("v1", "u15", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"Spec":{"containers":[{"name":"app"}]}}`, ""),
		"duplicate-spec":            reviewBody("v1", "u16", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":[{"name":"a"}]},"spec":{"containers":[{"name":"b","volumeMounts":null}],"volumes":null}}`, ""),
		"duplicate-spec-merged":     reviewBody("v1", "u22", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":[{"name":"a"}]},"spec":{"volumes":null}}`, ""),
		"nulls": reviewBody("v1", "u17", fuzzOptedIn, "CREATE", podKind,
			`{"metadata":{"labels":null,"annotations":{"token-projector.io/audience":"vault,sts.example.com"}},"spec":{"volumes":null,"initContainers":null,"containers":[{"name":"app","volumeMounts":null}]}}`, ""),
		"own-volume-other-source": reviewBody("v1", "u18", fuzzOptedIn, "CREATE", podKind,
			`{"metadata":{"annotations":{"token-projector.io/audience":"vault"}},"spec":{"volumes":[{"name":"token-projector","emptyDir":{}}],"containers":[{"name":"app"}]}}`, ""),
		"hostile-values": reviewBody("v1", "u19", fuzzOptedIn, "CREATE", podKind, annotated(`,"token-projector.io/expiration":"9999999999999999999","token-projector.io/mount-path":"../x"`), ""),
		"opted-out":      reviewBody("v1", "u20", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"labels":{"token-projector.io/inject":"disabled"},"annotations":{"token-projector.io/audience":"vault"}},"spec":{"containers":[{"name":"app"}]}}`, ""),
		"unknown-fields": reviewBody("v1", "u21", fuzzOptedIn, "CREATE", podKind, `{"future":1,"metadata":{"annotations":{"token-projector.io/audience":"vault"},"x":[]},"spec":{"y":{},"containers":[{"name":"app","z":true}]}}`, ""),
		// kube-apiserver's HTML-safe JSON escapes &, <, >, U+2028 and U+2029:
		// the one pass reads these; an escaped letter of kind goes to the
		// framework, in the object or in the review.
		"escaped-html": reviewBody("v1", "u23", fuzzOptedIn, "CREATE", podKind, `{"metadata":{"annotations":{"token-projector.io/audience":"vault","example.com/note":"a\u2028b\u2029"}},`+
			`"spec":{"containers":[{"name":"app","image":"curl","command":["sh","-c","test -f /a && curl 'http://svc/?a=1&b=2' > /tmp/out < /dev/null"]}]}}`, ""),
		"escaped-kind-in-object": reviewBody("v1", "u24", fuzzOptedIn, "CREATE", podKind, `{"\u004bind":"Pod","metadata":{"annotations":{"token-projector.io/audience":"vault \u0026 sts"}},"spec":{"containers":[{"name":"app"}]}}`, ""),
		"escaped-kind-in-review": []byte(strings.Replace(string(reviewBody("v1", "u25", fuzzOptedIn, "CREATE", podKind, annotated(`,"x":"\u003c\u212a\u003e"`), "")),
			`"kind":"AdmissionReview"`, `"kind":"AdmissionReview","\u212aind":"Other","apiVer\u0053ion":"v1"`, 1)),
		"body-empty":      nil,
		"body-truncated":  []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"`),
		"body-null":       []byte(`null`),
		"body-no-request": []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
		"body-other-kind": []byte(`{"apiVersion":"v1","kind":"Pod"}`),
	} {
		seeds[name] = body
	}
	return seeds
}

func reviewBody(version, uid, namespace, op, kind, object, subResource string) []byte {
	req := map[string]json.RawMessage{
		"uid":       quoteJSON(uid),
		"kind":      json.RawMessage(kind),
		"resource":  json.RawMessage(`{"group":"","version":"v1","resource":"pods"}`),
		"namespace": quoteJSON(namespace),
		"operation": quoteJSON(op),
		"userInfo":  json.RawMessage(`{"username":"admin"}`),
		"object":    json.RawMessage(object),
	}
	if subResource != "" {
		req["subResource"] = quoteJSON(subResource)
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/" + version, "kind": "AdmissionReview", "request": req})
	if err != nil {
		panic(fmt.Sprintf("seed %s: %v", uid, err))
	}
	return b
}

func quoteJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
