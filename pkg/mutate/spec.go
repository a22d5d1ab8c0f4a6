package mutate

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Audience is one requested token audience and the file its token goes to.
type Audience struct {
	// Name is the audience exactly as requested (the token's "aud" claim).
	Name string
	// File is the token's file name inside the mount path: <safe name>-token.
	File string
}

// Spec is what a pod's annotations ask for, validated against Config.
type Spec struct {
	Audiences []Audience
	// ExpirationSeconds is the token lifetime.
	ExpirationSeconds int64
	// ExpirationFrom says where ExpirationSeconds came from, for denials:
	// the annotation and its value, or the default that applied.
	ExpirationFrom string
	// ServiceAccount is the account the pod runs as, and the one whose
	// self-minting Role and RoleBinding are ensured. Empty means the pod runs as
	// "default": the volume is injected but no RBAC is ensured.
	ServiceAccount string
	// FromAnnotation is true when ServiceAccount came from the annotation, so
	// the pod's serviceAccountName must be set to it.
	FromAnnotation bool
	// MountPath is the directory of the token files.
	MountPath string
	// Containers are the names of the containers and init containers to mount
	// the volume into, in pod order.
	Containers []string
	// TokenFileEnv are the variables to set, in every container of
	// Containers, to a token file's path (token-file-env), in annotation order.
	TokenFileEnv []TokenFileVar
}

// Triggered reports whether the annotations ask for injection at all.
func Triggered(annotations map[string]string) bool {
	_, ok := annotations[AnnotationAudience]
	return ok
}

// Parse validates the annotations of a pod (or pod template) whose spec is
// podSpec. It returns the Spec, warnings for defaults applied and values
// adjusted, or an *InvalidError naming the first annotation at fault.
func Parse(annotations map[string]string, podSpec *corev1.PodSpec, cfg Config) (Spec, []string, error) {
	var spec Spec
	var warnings []string
	var err error

	if spec.Audiences, err = parseAudiences(annotations[AnnotationAudience], cfg); err != nil {
		return Spec{}, nil, err
	}
	var w string
	if spec.ExpirationSeconds, spec.ExpirationFrom, w, err = parseExpiration(annotations, cfg); err != nil {
		return Spec{}, nil, err
	}
	warnings = appendIf(warnings, w)
	if spec.ServiceAccount, spec.FromAnnotation, w, err = parseServiceAccount(annotations, podSpec); err != nil {
		return Spec{}, nil, err
	}
	if spec.ServiceAccount != "" && !cfg.serviceAccountAllowed(spec.ServiceAccount) {
		return Spec{}, nil, invalid(serviceAccountField(&spec, podSpec), spec.ServiceAccount, "%s", cfg.serviceAccountsAccepted())
	}
	warnings = appendIf(warnings, w)
	if spec.MountPath, err = parseMountPath(annotations); err != nil {
		return Spec{}, nil, err
	}
	if spec.Containers, err = parseContainers(annotations, podSpec); err != nil {
		return Spec{}, nil, err
	}
	if spec.TokenFileEnv, err = parseTokenFileEnv(annotations, spec.Audiences, spec.MountPath); err != nil {
		return Spec{}, nil, err
	}
	return spec, warnings, nil
}

func appendIf(warnings []string, w string) []string {
	if w == "" {
		return warnings
	}
	return append(warnings, w)
}

func parseAudiences(value string, cfg Config) ([]Audience, error) {
	const field = AnnotationAudience
	entries := strings.Split(value, ",")
	if len(entries) > MaxAudiences {
		return nil, invalid(field, value, "at most %d comma-separated audiences, got %d", MaxAudiences, len(entries))
	}
	auds := make([]Audience, 0, len(entries))
	byFile := make(map[string]string, len(entries))
	for _, e := range entries {
		name := strings.TrimSpace(e)
		switch {
		case name == "":
			return nil, invalid(field, value, "one or more non-empty audiences, comma-separated (vault or vault,sts.example.com)")
		case len(name) > MaxAudienceLength:
			return nil, invalid(field, name, "audiences of at most %d characters", MaxAudienceLength)
		case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
			return nil, invalid(field, name, "audiences without spaces or control characters")
		case !cfg.audienceAllowed(name):
			return nil, invalid(field, name, "%s", cfg.audiencesAccepted())
		}
		file := FileName(name)
		if strings.HasPrefix(file, ".") {
			return nil, invalid(field, name, "audiences whose file name (%s) does not start with a dot", file)
		}
		if prev, dup := byFile[file]; dup {
			if prev == name {
				return nil, invalid(field, value, "each audience once; %s is listed twice", quote(name))
			}
			return nil, invalid(field, value, "audiences with distinct file names; %s and %s both map to %s", quote(prev), quote(name), file)
		}
		byFile[file] = name
		auds = append(auds, Audience{Name: name, File: file})
	}
	return auds, nil
}

// FileName is the token file name of an audience: lower case, scheme dropped,
// characters outside [a-z0-9._-] replaced by '-', then "-token".
func FileName(audience string) string {
	s := strings.ToLower(audience)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, s) + TokenFileSuffix
}

func parseExpiration(annotations map[string]string, cfg Config) (int64, string, string, error) {
	const field = AnnotationExpiration
	raw, ok := annotations[field]
	if !ok {
		from := field + " not set: " + cfg.defaultSource()
		return int64(cfg.DefaultExpiration / time.Second), from,
			field + " not set: tokens expire after " + human(cfg.DefaultExpiration) + " (" + cfg.defaultSource() + ")", nil
	}
	accepted := fmt.Sprintf("whole seconds (7200) or a Go duration (2h) from %s to %s%s", human(MinExpiration), human(cfg.MaxExpiration), cfg.maxSource())
	d, ok := parseLifetime(raw)
	if !ok || d < MinExpiration || d > cfg.MaxExpiration {
		return 0, "", "", invalid(field, raw, "%s", accepted)
	}
	var warning string
	if d%time.Second != 0 {
		d = d.Truncate(time.Second)
		warning = fmt.Sprintf("%s %s is not whole seconds: rounded down to %s", field, quote(raw), human(d))
	}
	return int64(d / time.Second), field + " " + quote(raw), warning, nil
}

// parseLifetime reads whole seconds ("7200") or a Go duration ("2h"),
// surrounding spaces ignored; ok is false for anything else, seconds
// beyond what a Duration holds included.
func parseLifetime(raw string) (time.Duration, bool) {
	value := strings.TrimSpace(raw)
	if value != "" && strings.Trim(value, "0123456789") == "" {
		secs, err := strconv.ParseInt(value, 10, 64)
		if err != nil || secs > int64(math.MaxInt64/time.Second) {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	d, err := time.ParseDuration(value)
	return d, err == nil
}

// human prints a duration without the trailing zero units Go adds: 24h, 1h30m, 10m.
func human(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// podServiceAccount is the account a pod runs as, reading the deprecated
// field as kube-apiserver does when the current one is empty.
func podServiceAccount(podSpec *corev1.PodSpec) string {
	if podSpec.ServiceAccountName != "" {
		return podSpec.ServiceAccountName
	}
	return podSpec.DeprecatedServiceAccount
}

func parseServiceAccount(annotations map[string]string, podSpec *corev1.PodSpec) (string, bool, string, error) {
	const field = AnnotationServiceAccount
	current := podServiceAccount(podSpec)
	name, ok := annotations[field]
	if !ok {
		if current == "" || current == DefaultServiceAccount {
			return "", false, fmt.Sprintf("%s not set and the pod runs as %q: the token volume is injected, but no Role or RoleBinding is ensured "+
				"(self-minting rights for %q would reach every pod of the namespace)", field, DefaultServiceAccount, DefaultServiceAccount), nil
		}
		// The pod's own account gets a Role and RoleBinding too, so its name
		// must make valid object names as much as the annotation's does.
		specField := "spec.serviceAccountName"
		if podSpec.ServiceAccountName == "" {
			specField = "spec.serviceAccount"
		}
		if err := checkAccountName(specField, current); err != nil {
			return "", false, "", err
		}
		return current, false, "", nil
	}
	if name == DefaultServiceAccount {
		return "", false, "", invalid(field, name, "a dedicated ServiceAccount name, not %q (its token rights would reach every pod of the namespace); "+
			"remove the annotation to inject the volume without RBAC", DefaultServiceAccount)
	}
	if err := checkAccountName(field, name); err != nil {
		return "", false, "", err
	}
	for _, f := range []struct{ path, value string }{
		{"spec.serviceAccountName", podSpec.ServiceAccountName},
		{"spec.serviceAccount", podSpec.DeprecatedServiceAccount},
	} {
		if f.value != "" && f.value != DefaultServiceAccount && f.value != name {
			return "", false, "", invalid(field, name, "the same name as %s (%s), or no %s", f.path, quote(f.value), f.path)
		}
	}
	return name, true, "", nil
}

// serviceAccountField is where the account of spec came from.
func serviceAccountField(spec *Spec, podSpec *corev1.PodSpec) string {
	switch {
	case spec.FromAnnotation:
		return AnnotationServiceAccount
	case podSpec.ServiceAccountName == "":
		return "spec.serviceAccount"
	}
	return "spec.serviceAccountName"
}

// checkAccountName refuses a ServiceAccount name that is not a valid object
// name, or too long for <name>-create-token to be one.
func checkAccountName(field, name string) error {
	switch {
	case len(name) > MaxServiceAccountName:
		return invalid(field, name, "a ServiceAccount name of at most %d characters, so that %s%s is a valid name",
			MaxServiceAccountName, "<name>", RBACNameSuffix)
	case len(validation.IsDNS1123Subdomain(name)) > 0:
		return invalid(field, name, "a ServiceAccount name: lower case letters, digits, '-' and '.', starting and ending with a letter or digit")
	}
	return nil
}

func parseMountPath(annotations map[string]string) (string, error) {
	const field = AnnotationMountPath
	raw, ok := annotations[field]
	if !ok {
		return DefaultMountPath, nil
	}
	const accepted = "an absolute directory path other than / and without '..' elements, such as " + DefaultMountPath
	value := strings.TrimSpace(raw)
	if len(value) > MaxMountPathLength {
		return "", invalid(field, raw, "%s, of at most %d characters", accepted, MaxMountPathLength)
	}
	// Judged after path.Clean, as the kubelet and the container runtime
	// see it: "/.", "//" and "/var/.." are all the root directory.
	clean := path.Clean(value)
	if !strings.HasPrefix(value, "/") || clean == "/" || slices.Contains(strings.Split(value, "/"), "..") ||
		strings.ContainsFunc(value, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "", invalid(field, raw, "%s", accepted)
	}
	return clean, nil
}

func parseContainers(annotations map[string]string, podSpec *corev1.PodSpec) ([]string, error) {
	const field = AnnotationContainers
	all := containerNames(podSpec)
	if len(all) == 0 {
		// kube-apiserver rejects such a pod later anyway; refusing it here
		// keeps us from ensuring an identity for it, and the patch from
		// adding to a spec that may not exist.
		return nil, invalid("spec.containers", "[]", "a pod with at least one container to mount the token volume into")
	}
	raw, ok := annotations[field]
	if !ok {
		return all, nil
	}
	accepted := "a comma-separated list of this pod's containers: " + strings.Join(all, ", ")
	var chosen []string
	for e := range strings.SplitSeq(raw, ",") {
		name := strings.TrimSpace(e)
		switch {
		case name == "" || !slices.Contains(all, name):
			return nil, invalid(field, raw, "%s", accepted)
		case slices.Contains(chosen, name):
			return nil, invalid(field, raw, "%s, each once", accepted)
		}
		chosen = append(chosen, name)
	}
	// Pod order, not annotation order, so that the result does not depend on
	// how the author happened to list the names.
	return slices.DeleteFunc(all, func(n string) bool { return !slices.Contains(chosen, n) }), nil
}

func containerNames(podSpec *corev1.PodSpec) []string {
	names := make([]string, 0, len(podSpec.InitContainers)+len(podSpec.Containers))
	for i := range podSpec.InitContainers {
		names = append(names, podSpec.InitContainers[i].Name)
	}
	for i := range podSpec.Containers {
		names = append(names, podSpec.Containers[i].Name)
	}
	return names
}
