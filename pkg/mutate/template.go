package mutate

import (
	corev1 "k8s.io/api/core/v1"
)

// SameRequest reports whether two pod templates ask the webhook for the same
// thing: the same TemplateAnnotations and TemplateLabels (each present in
// both with one value, or in neither), and the same serviceAccountName (and
// deprecated serviceAccount). A workload UPDATE whose template asks for the
// same thing (a scale, a finalizer, an ownerReference, an image change) has
// nothing to validate or ensure: controllers make such writes and they must
// never depend on the webhook. The workloads webhook's matchConditions
// (config/webhook/manifests.yaml) apply the same rule.
func SameRequest(a, b *corev1.PodTemplateSpec) bool {
	return a.Spec.ServiceAccountName == b.Spec.ServiceAccountName &&
		a.Spec.DeprecatedServiceAccount == b.Spec.DeprecatedServiceAccount &&
		sameKeys(a.Annotations, b.Annotations, TemplateAnnotations) &&
		sameKeys(a.Labels, b.Labels, TemplateLabels)
}

// sameKeys reports whether a and b hold the same entries for keys.
func sameKeys(a, b map[string]string, keys []string) bool {
	for _, k := range keys {
		va, inA := a[k]
		vb, inB := b[k]
		if inA != inB || va != vb {
			return false
		}
	}
	return true
}
