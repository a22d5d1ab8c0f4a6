// Package podvalidation re-creates, for v1 Pods, the checks kube-apiserver
// applies to the parts of a pod the webhook writes: volumes (names, projected
// serviceAccountToken sources), volume mounts, environment variable names,
// the service account name and the annotations' total size. The fuzz tests hold every pod the webhook
// produces to these rules; test/integration's TestPodValidationAgreesWithAPIServer
// keeps them honest by asking a real kube-apiserver the same questions.
//
// The rules follow k8s.io/kubernetes/pkg/apis/core/validation (v1.37):
// ValidateVolumes, validateProjectionSources, ValidateLocalNonReservedPath,
// ValidateVolumeMounts, ValidateEnv's name check (relaxed, as
// RelaxedEnvironmentVariableValidation is locked on since v1.34) and
// ValidatePodSpec's serviceAccountName check, after
// the v1 defaulting that runs first (spec.serviceAccount follows
// spec.serviceAccountName, a volume without a source is an emptyDir, a token
// without expirationSeconds gets one hour). Importing that package would pull all of
// k8s.io/kubernetes into the module, so the checked rules are copied instead.
package podvalidation

import (
	"fmt"
	"path"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Validate returns what kube-apiserver would reject in pod's volumes, mounts,
// variable names, service account name and annotation size, one
// "field: reason" a line.
func Validate(pod *corev1.Pod) []string {
	var errs []string
	add := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}

	if err := apimachineryvalidation.ValidateAnnotationsSize(pod.Annotations); err != nil {
		add("metadata.annotations", "%v", err)
	}

	// v1 defaulting (SetDefaults_PodSpec) runs before validation.
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = pod.Spec.DeprecatedServiceAccount
	}
	if sa != "" {
		for _, msg := range apimachineryvalidation.ValidateServiceAccountName(sa, false) {
			add("spec.serviceAccountName", "%q: %s", sa, msg)
		}
	}

	volumes := map[string]bool{}
	for i, v := range pod.Spec.Volumes {
		field := fmt.Sprintf("spec.volumes[%d]", i)
		n := len(errs)
		validateVolumeSource(&v.VolumeSource, field, add)
		if v.Name == "" {
			add(field+".name", "required")
		} else {
			for _, msg := range validation.IsDNS1123Label(v.Name) {
				add(field+".name", "%q: %s", v.Name, msg)
			}
		}
		if volumes[v.Name] {
			add(field+".name", "duplicate %q", v.Name)
		}
		// kube-apiserver only lets mounts refer to volumes without errors.
		if len(errs) == n {
			volumes[v.Name] = true
		}
	}

	for _, list := range []struct {
		field string
		ctrs  []corev1.Container
	}{{"spec.initContainers", pod.Spec.InitContainers}, {"spec.containers", pod.Spec.Containers}} {
		for i := range list.ctrs {
			validateMounts(&list.ctrs[i], fmt.Sprintf("%s[%d].volumeMounts", list.field, i), volumes, add)
			validateEnvNames(list.ctrs[i].Env, fmt.Sprintf("%s[%d].env", list.field, i), add)
		}
	}
	return errs
}

func validateVolumeSource(src *corev1.VolumeSource, field string, add func(string, string, ...any)) {
	// v1 defaulting (SetDefaults_Volume) makes a volume without a source an
	// emptyDir, so only more than one source is an error.
	if n := countSet(src); n > 1 {
		add(field, "may not specify more than 1 volume type, has %d", n)
	}
	if src.Projected == nil {
		return
	}
	p := src.Projected
	field += ".projected"
	if m := p.DefaultMode; m != nil && (*m > 0o777 || *m < 0) {
		add(field+".defaultMode", "%d must be a number between 0 and 0777", *m)
	}
	for i, s := range p.Sources {
		sfield := fmt.Sprintf("%s.sources[%d]", field, i)
		if countSet(&s) > 1 {
			add(sfield, "may not specify more than 1 volume type per source")
		}
		tok := s.ServiceAccountToken
		if tok == nil {
			continue
		}
		// v1 defaulting gives a missing expirationSeconds one hour.
		switch exp := tok.ExpirationSeconds; {
		case exp == nil:
		case *exp < 10*60:
			add(sfield+".serviceAccountToken.expirationSeconds", "%d: may not be less than 10 minutes", *exp)
		case *exp > 1<<32:
			add(sfield+".serviceAccountToken.expirationSeconds", "%d: may not be larger than 2^32 seconds", *exp)
		}
		if tok.Path == "" {
			add(field+".path", "required")
		} else {
			for _, msg := range localNonReservedPath(tok.Path) {
				add(field+".path", "%q: %s", tok.Path, msg)
			}
		}
	}
}

// localNonReservedPath is ValidateLocalNonReservedPath: relative, no ".."
// element, not starting with "..".
func localNonReservedPath(p string) []string {
	var msgs []string
	if path.IsAbs(p) {
		msgs = append(msgs, "must be a relative path")
	}
	backsteps := false
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			backsteps = true
			msgs = append(msgs, "must not contain '..'")
			break
		}
	}
	if !backsteps && strings.HasPrefix(p, "..") {
		msgs = append(msgs, "must not start with '..'")
	}
	return msgs
}

func validateMounts(ctr *corev1.Container, field string, volumes map[string]bool, add func(string, string, ...any)) {
	devices := map[string]string{}
	for _, d := range ctr.VolumeDevices {
		devices[d.Name] = d.DevicePath
	}
	seen := map[string]bool{}
	for i, m := range ctr.VolumeMounts {
		mfield := fmt.Sprintf("%s[%d]", field, i)
		if m.Name == "" {
			add(mfield+".name", "required")
		}
		if !volumes[m.Name] {
			add(mfield+".name", "%q: not found", m.Name)
		}
		if m.MountPath == "" {
			add(mfield+".mountPath", "required")
		}
		if seen[m.MountPath] {
			add(mfield+".mountPath", "%q: must be unique", m.MountPath)
		}
		seen[m.MountPath] = true
		if _, ok := devices[m.Name]; ok {
			add(mfield+".name", "%q: must not already exist in volumeDevices", m.Name)
		}
		for _, p := range devices {
			if p == m.MountPath {
				add(mfield+".mountPath", "%q: must not already exist as a path in volumeDevices", m.MountPath)
			}
		}
	}
}

// validateEnvNames is ValidateEnv's name check: required, and printable
// ASCII other than '='. (Names may repeat: kube-apiserver only warns.)
func validateEnvNames(env []corev1.EnvVar, field string, add func(string, string, ...any)) {
	for i, e := range env {
		efield := fmt.Sprintf("%s[%d].name", field, i)
		if e.Name == "" {
			add(efield, "required")
			continue
		}
		for _, msg := range validation.IsRelaxedEnvVarName(e.Name) {
			add(efield, "%q: %s", e.Name, msg)
		}
	}
}

// countSet counts the non-nil pointer fields of a one-of struct (a
// VolumeSource or a VolumeProjection).
func countSet(oneOf any) int {
	v := reflect.ValueOf(oneOf).Elem()
	n := 0
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			n++
		}
	}
	return n
}
