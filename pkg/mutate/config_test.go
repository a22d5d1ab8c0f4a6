package mutate

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestFileName(t *testing.T) {
	for _, tc := range []struct{ audience, want string }{
		{"vault", "vault-token"},
		{"sts.example.com", "sts.example.com-token"},
		{"https://STS.Example.com/aws", "sts.example.com-aws-token"},
		{"spiffe://cluster.local/ns/x", "cluster.local-ns-x-token"},
		{"a b:c", "a-b-c-token"},
	} {
		if got := FileName(tc.audience); got != tc.want {
			t.Errorf("FileName(%q) = %q, want %q", tc.audience, got, tc.want)
		}
	}
}

func TestAllowedAudiences(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowedAudiences = []string{"vault", "*.example.com"}
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
	for _, tc := range []struct {
		audience string
		allowed  bool
	}{
		{"vault", true},
		{"sts.example.com", true},
		{"vault,sts.example.com", true},
		{"evil.example.org", false},
		{"vault,evil", false},
	} {
		_, _, err := Parse(map[string]string{AnnotationAudience: tc.audience}, spec, cfg)
		if (err == nil) != tc.allowed {
			t.Errorf("audience %q: err = %v, want allowed=%v", tc.audience, err, tc.allowed)
		}
		if err != nil && !strings.Contains(err.Error(), "vault, *.example.com") {
			t.Errorf("denial does not say what is accepted: %v", err)
		}
	}
}

func TestMaxExpirationFromConfig(t *testing.T) {
	cfg := Config{DefaultExpiration: time.Hour, MaxExpiration: 2 * time.Hour}
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
	ann := map[string]string{AnnotationAudience: "vault", AnnotationExpiration: "3h"}
	_, _, err := Parse(ann, spec, cfg)
	if err == nil || !strings.Contains(err.Error(), "from 10m to 2h") {
		t.Fatalf("3h with a 2h maximum: err = %v, want a denial naming the 2h bound", err)
	}
	ann[AnnotationExpiration] = "2h"
	got, _, err := Parse(ann, spec, cfg)
	if err != nil || got.ExpirationSeconds != 7200 {
		t.Fatalf("2h with a 2h maximum: %+v, %v", got, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", DefaultConfig(), true},
		{"max below minimum", Config{DefaultExpiration: time.Hour, MaxExpiration: time.Minute}, false},
		{"default above max", Config{DefaultExpiration: 3 * time.Hour, MaxExpiration: 2 * time.Hour}, false},
		{"default not whole seconds", Config{DefaultExpiration: time.Hour + time.Millisecond, MaxExpiration: 2 * time.Hour}, false},
		{"bad glob", Config{DefaultExpiration: time.Hour, MaxExpiration: 2 * time.Hour, AllowedAudiences: []string{"["}}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestAudiencePatterns is the matching rule README documents: whole
// audience, case-sensitive, '*' never crosses '/', '?' and '[' pattern
// characters unless escaped with '\'.
func TestAudiencePatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, audience string
		allowed           bool
	}{
		{"vault", "vault", true},
		{"vault", "vault-prod", false},
		{"vault", "Vault", false},
		{"*.example.com", "sts.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "https://sts.example.com/aws", false},
		{"*.example.com", "https://evil.example.org/.example.com", false},
		{"https://sts.example.com/*", "https://sts.example.com/aws", true},
		{"https://sts.example.com/*", "https://sts.example.com/aws/prod", false},
		{"https://sts.example.com/*", "https://sts.example.com", false},
		{"https://sts.example.com/*", "https://sts.example.com.evil.org/aws", false},
		{"https://*.example.com/aws", "https://sts.example.com/aws", true},
		{"https://*.example.com/aws", "https://sts.example.com/gcp", false},
		{"spiffe://cluster.local/ns/*/sa/*", "spiffe://cluster.local/ns/a/sa/b", true},
		{"spiffe://cluster.local/ns/*/sa/*", "spiffe://cluster.local/ns/a", false},
		{"*", "sts.example.com", true},
		{"*", "https://sts.example.com/aws", false},
		{`sts\*`, "sts*", true},
		{`sts\*`, "stsx", false},
		// '?' and '[' are pattern characters, and URL audiences hold them:
		// unescaped, '?' takes any one character and [1] is a class that
		// matches "1" only; '\' makes each literal.
		{"https://sts.example.com/aws?region=eu", "https://sts.example.com/aws?region=eu", true},
		{"https://sts.example.com/aws?region=eu", "https://sts.example.com/awsXregion=eu", true},
		{`https://sts.example.com/aws\?region=eu`, "https://sts.example.com/aws?region=eu", true},
		{`https://sts.example.com/aws\?region=eu`, "https://sts.example.com/awsXregion=eu", false},
		{`https://sts.example.com/*\?region=eu`, "https://sts.example.com/aws?region=eu", true},
		{`https://sts.example.com/*\?region=eu`, "https://sts.example.com/aws?region=us", false},
		{"https://idp.example.com/app[1]", "https://idp.example.com/app[1]", false},
		{"https://idp.example.com/app[1]", "https://idp.example.com/app1", true},
		{`https://idp.example.com/app\[1]`, "https://idp.example.com/app[1]", true},
		{`https://idp.example.com/app\[1]`, "https://idp.example.com/app1", false},
		{`https://idp.example.com/app\[1\]`, "https://idp.example.com/app[1]", true},
	} {
		cfg := DefaultConfig()
		cfg.AllowedAudiences = []string{tc.pattern}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := cfg.audienceAllowed(tc.audience); got != tc.allowed {
			t.Errorf("pattern %q, audience %q: allowed = %v, want %v", tc.pattern, tc.audience, got, tc.allowed)
		}
	}
}
