package mutate

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestForNamespace: a namespace's policy annotations narrow the flags and
// never widen them, a missing default is clamped to a lower maximum, and a
// malformed annotation denies every pod with a message naming the namespace,
// the annotation, its value and what is accepted. Each case parses one pod
// under the resulting configuration.
func TestForNamespace(t *testing.T) {
	flags := Config{DefaultExpiration: time.Hour, MaxExpiration: 24 * time.Hour}
	withAudiences := flags
	withAudiences.AllowedAudiences = []string{"vault", "*.example.com"}
	const denied = "token-projector.io/expiration: \"2h\" is not accepted: "
	for _, tc := range []struct {
		name       string
		flags      Config
		namespace  map[string]string // the Namespace's annotations
		pod        map[string]string // the pod's, besides the audience vault
		audience   string            // the pod's audience; vault if empty
		nsErr      string            // ForNamespace's error, whole
		nsWarning  string            // a warning of ForNamespace
		podErr     string            // Parse's error, whole
		expiration int64             // what Parse gives
		warning    string            // a warning of Parse
	}{
		{name: "no policy annotations: the flags", flags: flags, namespace: map[string]string{"other": "x"},
			expiration: 3600, warning: "token-projector.io/expiration not set: tokens expire after 1h (the default)"},
		{name: "lower max denies above it", flags: flags, namespace: map[string]string{AnnotationMaxExpiration: "30m"},
			pod:    map[string]string{AnnotationExpiration: "2h"},
			podErr: denied + "whole seconds (7200) or a Go duration (2h) from 10m to 30m (namespace shop's token-projector.io/max-expiration)"},
		{name: "lower max admits up to it", flags: flags, namespace: map[string]string{AnnotationMaxExpiration: "1800"},
			pod: map[string]string{AnnotationExpiration: "30m"}, expiration: 1800},
		{name: "lower max clamps the flags' default", flags: flags, namespace: map[string]string{AnnotationMaxExpiration: "30m"},
			expiration: 1800,
			warning:    "token-projector.io/expiration not set: tokens expire after 30m (the webhook's default, lowered to namespace shop's token-projector.io/max-expiration)"},
		{name: "higher max does not widen", flags: flags, namespace: map[string]string{AnnotationMaxExpiration: "48h"},
			pod:       map[string]string{AnnotationExpiration: "36h"},
			nsWarning: `namespace shop's token-projector.io/max-expiration "48h" is above the webhook's --max-expiration 24h, which applies: a namespace may only lower it`,
			podErr:    `token-projector.io/expiration: "36h" is not accepted: whole seconds (7200) or a Go duration (2h) from 10m to 24h`},
		{name: "namespace default", flags: flags, namespace: map[string]string{AnnotationDefaultExpiration: "45m"},
			expiration: 2700, warning: "token-projector.io/expiration not set: tokens expire after 45m (namespace shop's token-projector.io/default-expiration)"},
		{name: "namespace default within its max", flags: flags, namespace: map[string]string{AnnotationDefaultExpiration: "20m", AnnotationMaxExpiration: "30m"},
			expiration: 1200},
		{name: "audiences narrow the flags'", flags: withAudiences, namespace: map[string]string{AnnotationAllowedAudiences: "vault"},
			audience: "sts.example.com",
			podErr: `token-projector.io/audience: "sts.example.com" is not accepted: audiences matching vault, *.example.com (set by the cluster admin) ` +
				`and matching vault (namespace shop's token-projector.io/allowed-audiences)`},
		{name: "audiences within both lists", flags: withAudiences, namespace: map[string]string{AnnotationAllowedAudiences: "vault, sts.*"},
			audience: "sts.example.com", expiration: 3600},
		{name: "audiences never widen the flags'", flags: withAudiences, namespace: map[string]string{AnnotationAllowedAudiences: "*"},
			audience: "evil",
			podErr: `token-projector.io/audience: "evil" is not accepted: audiences matching vault, *.example.com (set by the cluster admin) ` +
				`and matching * (namespace shop's token-projector.io/allowed-audiences)`},
		{name: "escaped '?' matches itself", flags: flags, namespace: map[string]string{AnnotationAllowedAudiences: `vault, https://sts.example.com/aws\?region=eu`},
			audience: "https://sts.example.com/aws?region=eu", expiration: 3600},
		{name: "escaped '?' matches nothing else", flags: flags, namespace: map[string]string{AnnotationAllowedAudiences: `vault, https://sts.example.com/aws\?region=eu`},
			audience: "https://sts.example.com/awsXregion=eu",
			podErr: `token-projector.io/audience: "https://sts.example.com/awsXregion=eu" is not accepted: ` +
				`audiences matching vault, https://sts.example.com/aws\?region=eu (namespace shop's token-projector.io/allowed-audiences)`},
		{name: "audiences without flags", flags: flags, namespace: map[string]string{AnnotationAllowedAudiences: "vault"},
			audience: "evil", podErr: `token-projector.io/audience: "evil" is not accepted: audiences matching vault (namespace shop's token-projector.io/allowed-audiences)`},

		{name: "malformed max", flags: flags, namespace: map[string]string{AnnotationMaxExpiration: "1d"},
			nsErr: `namespace shop's token-projector.io/max-expiration: "1d" is not accepted: whole seconds (1800) or a Go duration (30m) of whole seconds, at least 10m; ` +
				"no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "max below 10m", flags: flags, namespace: map[string]string{AnnotationMaxExpiration: "5m"},
			nsErr: `namespace shop's token-projector.io/max-expiration: "5m" is not accepted: whole seconds (1800) or a Go duration (30m) of whole seconds, at least 10m; ` +
				"no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "max not whole seconds", flags: flags, namespace: map[string]string{AnnotationMaxExpiration: "30m0.5s"},
			nsErr: `namespace shop's token-projector.io/max-expiration: "30m0.5s" is not accepted: whole seconds (1800) or a Go duration (30m) of whole seconds, at least 10m; ` +
				"no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "default below 10m", flags: flags, namespace: map[string]string{AnnotationDefaultExpiration: "300"},
			nsErr: `namespace shop's token-projector.io/default-expiration: "300" is not accepted: whole seconds (1800) or a Go duration (30m) of whole seconds, ` +
				"from 10m to 24h (the webhook's --max-expiration); no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "default above the namespace's max", flags: flags, namespace: map[string]string{AnnotationDefaultExpiration: "2h", AnnotationMaxExpiration: "1h"},
			nsErr: `namespace shop's token-projector.io/default-expiration: "2h" is not accepted: whole seconds (1800) or a Go duration (30m) of whole seconds, ` +
				"from 10m to 1h (namespace shop's token-projector.io/max-expiration); no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "default above the flags' max", flags: flags, namespace: map[string]string{AnnotationDefaultExpiration: "48h"},
			nsErr: `namespace shop's token-projector.io/default-expiration: "48h" is not accepted: whole seconds (1800) or a Go duration (30m) of whole seconds, ` +
				"from 10m to 24h (the webhook's --max-expiration); no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "empty audience list", flags: withAudiences, namespace: map[string]string{AnnotationAllowedAudiences: " , "},
			nsErr: `namespace shop's token-projector.io/allowed-audiences: " , " is not accepted: at least one audience glob, comma-separated, such as vault,*.example.com; ` +
				"no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "bad glob", flags: flags, namespace: map[string]string{AnnotationAllowedAudiences: "vault,[a-"},
			nsErr: `namespace shop's token-projector.io/allowed-audiences: "vault,[a-" is not accepted: comma-separated audience globs (path.Match, as --allowed-audiences; "[a-" is malformed), ` +
				"such as vault,*.example.com; no pod of namespace shop gets a token until a cluster admin fixes it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, warnings, err := tc.flags.ForNamespace("shop", tc.namespace)
			if tc.nsErr != "" {
				if err == nil || err.Error() != tc.nsErr || !IsInvalid(err) {
					t.Fatalf("ForNamespace error:\n got %v\nwant %s", err, tc.nsErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(warnings, "\n"); got != tc.nsWarning {
				t.Errorf("ForNamespace warnings:\n got %q\nwant %q", got, tc.nsWarning)
			}
			audience := tc.audience
			if audience == "" {
				audience = "vault"
			}
			ann := map[string]string{AnnotationAudience: audience}
			for k, v := range tc.pod {
				ann[k] = v
			}
			spec, podWarnings, err := Parse(ann, &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}, cfg)
			if tc.podErr != "" {
				if err == nil || err.Error() != tc.podErr {
					t.Fatalf("Parse error:\n got %v\nwant %s", err, tc.podErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if spec.ExpirationSeconds != tc.expiration {
				t.Errorf("expiration %ds, want %ds", spec.ExpirationSeconds, tc.expiration)
			}
			if tc.warning != "" && !strings.Contains(strings.Join(podWarnings, "\n"), tc.warning) {
				t.Errorf("warnings %q lack %q", podWarnings, tc.warning)
			}
		})
	}
}

// TestForNamespaceKeepsFlags: a namespace without policy annotations gets
// the flags' configuration itself, with no namespace named in messages.
func TestForNamespaceKeepsFlags(t *testing.T) {
	flags := DefaultConfig()
	flags.AllowedAudiences = []string{"vault"}
	for _, ann := range []map[string]string{nil, {LabelInject: InjectEnabled, "team": "shop"}} {
		cfg, warnings, err := flags.ForNamespace("shop", ann)
		if err != nil || warnings != nil || cfg.Namespace != "" || cfg.MaxExpiration != flags.MaxExpiration || cfg.DefaultExpiration != flags.DefaultExpiration ||
			len(cfg.AllowedAudiences) != 1 || cfg.NamespaceAudiences != nil {
			t.Errorf("annotations %v: %+v %v %v, want the flags unchanged", ann, cfg, warnings, err)
		}
	}
}

// TestAllowedServiceAccounts: a namespace's allowed-service-accounts bounds
// the account a pod names, from the annotation or its spec, with a denial
// naming where the name came from, the value, the namespace's annotation
// and what it accepts; a pod that names none (it runs as default, and no
// RBAC is ensured) is not bounded. A malformed or empty list denies every
// pod of the namespace.
func TestAllowedServiceAccounts(t *testing.T) {
	const accepted = ` is not accepted: a ServiceAccount whose name matches app-*, web ` +
		`(namespace shop's token-projector.io/allowed-service-accounts "app-*,web": the accounts the webhook may create and manage there); ` +
		`name one of those, or ask a cluster admin to add this one`
	policy := map[string]string{AnnotationAllowedServiceAccounts: "app-*, web"}
	for _, tc := range []struct {
		name      string
		namespace map[string]string
		pod       map[string]string // the pod's annotations besides the audience
		spec      corev1.PodSpec
		nsErr     string
		podErr    string
		want      string // the account Parse gives
	}{
		{name: "an annotation's account it allows", namespace: policy, pod: map[string]string{AnnotationServiceAccount: "app-api"}, want: "app-api"},
		{name: "a spec's account it allows", namespace: policy, spec: corev1.PodSpec{ServiceAccountName: "web"}, want: "web"},
		{name: "no account named", namespace: policy},
		{name: "an annotation's account it does not allow", namespace: policy, pod: map[string]string{AnnotationServiceAccount: "ci-deployer"},
			podErr: `token-projector.io/service-account: "ci-deployer"` + accepted},
		{name: "a spec's account it does not allow", namespace: policy, spec: corev1.PodSpec{ServiceAccountName: "ci-deployer"},
			podErr: `spec.serviceAccountName: "ci-deployer"` + accepted},
		{name: "no annotation: any account", pod: map[string]string{AnnotationServiceAccount: "ci-deployer"}, want: "ci-deployer"},
		{name: "malformed", namespace: map[string]string{AnnotationAllowedServiceAccounts: "app-*,[a-"},
			nsErr: `namespace shop's token-projector.io/allowed-service-accounts: "app-*,[a-" is not accepted: comma-separated ServiceAccount name globs (path.Match; "[a-" is malformed), ` +
				"such as app-*,web; no pod of namespace shop gets a token until a cluster admin fixes it"},
		{name: "empty", namespace: map[string]string{AnnotationAllowedServiceAccounts: ""},
			nsErr: `namespace shop's token-projector.io/allowed-service-accounts: "" is not accepted: at least one ServiceAccount name glob, comma-separated, such as app-*,web; ` +
				"no pod of namespace shop gets a token until a cluster admin fixes it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := DefaultConfig().ForNamespace("shop", tc.namespace)
			if tc.nsErr != "" {
				if err == nil || err.Error() != tc.nsErr || !IsInvalid(err) {
					t.Fatalf("ForNamespace error:\n got %v\nwant %s", err, tc.nsErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ann := map[string]string{AnnotationAudience: "vault"}
			for k, v := range tc.pod {
				ann[k] = v
			}
			tc.spec.Containers = []corev1.Container{{Name: "app"}}
			spec, _, err := Parse(ann, &tc.spec, cfg)
			if tc.podErr != "" {
				if err == nil || err.Error() != tc.podErr || !IsInvalid(err) {
					t.Fatalf("Parse error:\n got %v\nwant %s", err, tc.podErr)
				}
				return
			}
			if err != nil || spec.ServiceAccount != tc.want {
				t.Errorf("got %q, %v; want %q", spec.ServiceAccount, err, tc.want)
			}
		})
	}
}
