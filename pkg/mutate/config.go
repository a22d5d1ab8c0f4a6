package mutate

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Config is what the cluster admin decides, through the webhook's flags, about
// every pod: the expiration bounds and which audiences may be requested.
type Config struct {
	// DefaultExpiration applies when a pod has no expiration annotation.
	DefaultExpiration time.Duration
	// MaxExpiration is the largest expiration a pod may ask for.
	MaxExpiration time.Duration
	// AllowedAudiences are path.Match globs; empty allows every audience.
	// See audienceAllowed for the rule.
	AllowedAudiences []string

	// The fields below are set by ForNamespace, from the policy annotations
	// of the pod's Namespace; the denials and warnings name them.

	// Namespace is the namespace whose annotations narrowed this
	// configuration; empty: the flags alone apply.
	Namespace string
	// NamespaceAudiences, if set, are the namespace's globs: an audience
	// must match one of them as well as one of AllowedAudiences.
	NamespaceAudiences []string
	// NamespaceServiceAccounts, if set, are the namespace's globs of the
	// accounts the webhook may create and manage there: a pod's account
	// must match one of them.
	NamespaceServiceAccounts []string
	// MaxFromNamespace: MaxExpiration is the namespace's, below the flag's.
	MaxFromNamespace bool
	// DefaultFrom says where DefaultExpiration came from.
	DefaultFrom DefaultSource
}

// DefaultSource is where a Config's DefaultExpiration came from.
type DefaultSource int

const (
	// DefaultFromFlags is --default-expiration.
	DefaultFromFlags DefaultSource = iota
	// DefaultFromNamespace is the namespace's default-expiration annotation.
	DefaultFromNamespace
	// DefaultClamped is --default-expiration lowered to the namespace's
	// max-expiration, which is below it.
	DefaultClamped
)

// DefaultConfig is the configuration of a webhook started without flags.
func DefaultConfig() Config {
	return Config{DefaultExpiration: DefaultExpiration, MaxExpiration: DefaultMaxExpiration}
}

// Validate reports a configuration that could never admit a pod, so that the
// webhook refuses to start rather than deny every pod.
func (c Config) Validate() error {
	if c.MaxExpiration < MinExpiration {
		return fmt.Errorf("max expiration %s is below the minimum %s", c.MaxExpiration, MinExpiration)
	}
	if c.DefaultExpiration < MinExpiration || c.DefaultExpiration > c.MaxExpiration {
		return fmt.Errorf("default expiration %s must lie in [%s, %s]", c.DefaultExpiration, MinExpiration, c.MaxExpiration)
	}
	if c.DefaultExpiration%time.Second != 0 {
		return fmt.Errorf("default expiration %s must be whole seconds", c.DefaultExpiration)
	}
	for _, g := range c.AllowedAudiences {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("allowed audience pattern %q: %w", g, err)
		}
	}
	return nil
}

// audienceAllowed: a pattern must match the whole audience, case-sensitively,
// by path.Match: '*' is any run of characters but '/', '?' one character but
// '/', [a-z] a class, '\' escapes. So "*.example.com" matches
// "sts.example.com" and "a.b.example.com" but not
// "https://sts.example.com/aws", and "https://sts.example.com/*" matches
// "https://sts.example.com/aws" but not ".../aws/prod". '*' stops at '/' on
// purpose: were it to cross it, "*.example.com" would also allow
// "https://evil.example.org/.example.com".
// A namespace's globs (NamespaceAudiences) narrow the flag's: the audience
// must match one of each list.
func (c Config) audienceAllowed(aud string) bool {
	return matchesAny(c.AllowedAudiences, aud) && matchesAny(c.NamespaceAudiences, aud)
}

// matchesAny: an empty list allows every audience.
func matchesAny(globs []string, aud string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, aud); ok {
			return true
		}
	}
	return false
}

// serviceAccountAllowed: an account the namespace's globs allow (any, if
// it sets none).
func (c Config) serviceAccountAllowed(name string) bool {
	return matchesAny(c.NamespaceServiceAccounts, name)
}

// serviceAccountsAccepted says which accounts are accepted, and who decided.
func (c Config) serviceAccountsAccepted() string {
	return fmt.Sprintf("a ServiceAccount whose name matches %s (%s %s: the accounts the webhook may create and manage there); "+
		"name one of those, or ask a cluster admin to add this one", strings.Join(c.NamespaceServiceAccounts, ", "),
		c.namespaceAnnotation(AnnotationAllowedServiceAccounts), quote(strings.Join(c.NamespaceServiceAccounts, ",")))
}

// audiencesAccepted says which audiences are accepted, and who decided.
func (c Config) audiencesAccepted() string {
	const byFlags = "(set by the cluster admin)"
	byNamespace := "(" + c.namespaceAnnotation(AnnotationAllowedAudiences) + ")"
	switch {
	case len(c.NamespaceAudiences) == 0:
		return "audiences matching " + strings.Join(c.AllowedAudiences, ", ") + " " + byFlags
	case len(c.AllowedAudiences) == 0:
		return "audiences matching " + strings.Join(c.NamespaceAudiences, ", ") + " " + byNamespace
	}
	return "audiences matching " + strings.Join(c.AllowedAudiences, ", ") + " " + byFlags +
		" and matching " + strings.Join(c.NamespaceAudiences, ", ") + " " + byNamespace
}

// maxSource names where MaxExpiration came from when it is a namespace's.
func (c Config) maxSource() string {
	if !c.MaxFromNamespace {
		return ""
	}
	return " (" + c.namespaceAnnotation(AnnotationMaxExpiration) + ")"
}

// defaultSource says, for the warning when the default applies, where it
// came from.
func (c Config) defaultSource() string {
	switch c.DefaultFrom {
	case DefaultFromNamespace:
		return c.namespaceAnnotation(AnnotationDefaultExpiration)
	case DefaultClamped:
		return "the webhook's default, lowered to " + c.namespaceAnnotation(AnnotationMaxExpiration)
	}
	return "the default"
}

// namespaceAnnotation names one policy annotation of c's namespace.
func (c Config) namespaceAnnotation(key string) string {
	return "namespace " + c.Namespace + "'s " + key
}
