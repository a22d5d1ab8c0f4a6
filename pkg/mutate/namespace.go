package mutate

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// ForNamespace narrows c, the webhook's flags, by the policy annotations of
// the Namespace name (NamespacePolicyAnnotations). Namespaces are
// cluster-scoped, so these are set by whoever may update the Namespace, not
// by pod authors; they only narrow: an audience must match both lists, the
// maximum is the smaller of the two, and a namespace maximum above the
// flag's is ignored with a warning; the allowed service accounts bound what
// every pod may name. Without a default of its own, a namespace whose
// maximum is below --default-expiration gets that maximum as its default.
//
// A malformed annotation is an *InvalidError naming the namespace, the
// annotation, its value and what is accepted: the caller denies the pod
// rather than fall back on the wider flags.
func (c Config) ForNamespace(name string, annotations map[string]string) (Config, []string, error) {
	rawAudiences, hasAudiences := annotations[AnnotationAllowedAudiences]
	rawMax, hasMax := annotations[AnnotationMaxExpiration]
	rawDefault, hasDefault := annotations[AnnotationDefaultExpiration]
	rawAccounts, hasAccounts := annotations[AnnotationAllowedServiceAccounts]
	if !hasAudiences && !hasMax && !hasDefault && !hasAccounts {
		return c, nil, nil
	}
	out := c
	out.Namespace = name
	var warnings []string
	if hasAudiences {
		globs, err := out.namespaceGlobs(AnnotationAllowedAudiences, rawAudiences, "audience", "path.Match, as --allowed-audiences", "vault,*.example.com")
		if err != nil {
			return Config{}, nil, err
		}
		out.NamespaceAudiences = globs
	}
	if hasAccounts {
		globs, err := out.namespaceGlobs(AnnotationAllowedServiceAccounts, rawAccounts, "ServiceAccount name", "path.Match", "app-*,web")
		if err != nil {
			return Config{}, nil, err
		}
		out.NamespaceServiceAccounts = globs
	}
	if hasMax {
		d, err := out.namespaceLifetime(AnnotationMaxExpiration, rawMax, c.MaxExpiration, false)
		if err != nil {
			return Config{}, nil, err
		}
		switch {
		case d < c.MaxExpiration:
			out.MaxExpiration, out.MaxFromNamespace = d, true
		case d > c.MaxExpiration:
			warnings = append(warnings, fmt.Sprintf("%s %s is above the webhook's --max-expiration %s, which applies: a namespace may only lower it",
				out.namespaceAnnotation(AnnotationMaxExpiration), quote(rawMax), human(c.MaxExpiration)))
		}
	}
	switch {
	case hasDefault:
		d, err := out.namespaceLifetime(AnnotationDefaultExpiration, rawDefault, out.MaxExpiration, true)
		if err != nil {
			return Config{}, nil, err
		}
		out.DefaultExpiration, out.DefaultFrom = d, DefaultFromNamespace
	case out.DefaultExpiration > out.MaxExpiration:
		out.DefaultExpiration, out.DefaultFrom = out.MaxExpiration, DefaultClamped
	}
	return out, warnings, nil
}

// namespaceGlobs parses a namespace's allowed audiences or service
// accounts (key): comma-separated globs of noun by rule, at least one (an
// empty list would allow everything, the opposite of narrowing).
func (c Config) namespaceGlobs(key, raw, noun, rule, example string) ([]string, error) {
	var globs []string
	for part := range strings.SplitSeq(raw, ",") {
		g := strings.TrimSpace(part)
		if g == "" {
			continue
		}
		if _, err := path.Match(g, ""); err != nil {
			return nil, c.namespaceInvalid(key, raw, "comma-separated %s globs (%s; %s is malformed), such as %s", noun, rule, quote(g), example)
		}
		globs = append(globs, g)
	}
	if len(globs) == 0 {
		return nil, c.namespaceInvalid(key, raw, "at least one %s glob, comma-separated, such as %s", noun, example)
	}
	return globs, nil
}

// namespaceLifetime parses a namespace's maximum or default expiration:
// whole seconds or a Go duration of whole seconds, at least MinExpiration
// and, with bounded, at most max (the namespace's effective maximum).
func (c Config) namespaceLifetime(key, raw string, max time.Duration, bounded bool) (time.Duration, error) {
	accepted := fmt.Sprintf("whole seconds (1800) or a Go duration (30m) of whole seconds, at least %s", human(MinExpiration))
	if bounded {
		source := "the webhook's --max-expiration"
		if c.MaxFromNamespace {
			source = c.namespaceAnnotation(AnnotationMaxExpiration)
		}
		accepted = fmt.Sprintf("whole seconds (1800) or a Go duration (30m) of whole seconds, from %s to %s (%s)", human(MinExpiration), human(max), source)
	}
	d, ok := parseLifetime(raw)
	if !ok || d < MinExpiration || d%time.Second != 0 || (bounded && d > max) {
		return 0, c.namespaceInvalid(key, raw, "%s", accepted)
	}
	return d, nil
}

// namespaceInvalid is the denial of every pod of a namespace whose policy
// annotation is malformed: it names the namespace, so that the pod's author
// knows whom to ask, and the cluster admin what to fix.
func (c Config) namespaceInvalid(key, value, accepted string, args ...any) error {
	return invalid(c.namespaceAnnotation(key), value, accepted+"; no pod of namespace %s gets a token until a cluster admin fixes it",
		append(args, c.Namespace)...)
}
