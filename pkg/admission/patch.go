package admission

import (
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// patchOps is the response's patch: add-only operations built from what
// pkg/mutate decided, never a re-marshal and diff of the pod.
func patchOps(pod *corev1.Pod, c *mutate.Changes) []jsonpatch.JsonPatchOperation {
	return c.JSONPatch(pod)
}
