package mutate

import (
	"fmt"
	"path"
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
}

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
func (c Config) audienceAllowed(aud string) bool {
	if len(c.AllowedAudiences) == 0 {
		return true
	}
	for _, g := range c.AllowedAudiences {
		if ok, _ := path.Match(g, aud); ok {
			return true
		}
	}
	return false
}
