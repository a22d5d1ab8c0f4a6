package mutate

import (
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// SameRequest reports whether two pod templates ask the webhook for the same
// thing: equal token-projector.io/* annotations and labels, and the same
// serviceAccountName (and deprecated serviceAccount). A workload UPDATE whose
// template asks for the same thing (a scale, a finalizer, an ownerReference,
// an image change) has nothing to validate or ensure: controllers make such
// writes and they must never depend on the webhook. The workloads webhook's
// matchConditions (config/webhook/manifests.yaml) apply the same rule.
func SameRequest(a, b *corev1.PodTemplateSpec) bool {
	return a.Spec.ServiceAccountName == b.Spec.ServiceAccountName &&
		a.Spec.DeprecatedServiceAccount == b.Spec.DeprecatedServiceAccount &&
		maps.Equal(ours(a.Annotations), ours(b.Annotations)) &&
		maps.Equal(ours(a.Labels), ours(b.Labels))
}

// ours keeps the entries under Prefix.
func ours(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, Prefix) {
			out[k] = v
		}
	}
	return out
}
