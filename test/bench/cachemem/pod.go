package cachemem

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/bench/fixture"
)

// runningPod is the i-th pod of the cluster as kube-apiserver lists it: the
// benchmarks' pod, scheduled and running, with the managed fields of its
// creator and of the kubelet; injected by the webhook (volume, mounts,
// account, status annotation, injected label) if Shape says so.
func runningPod(s Shape, i int) any {
	ns := namespaceName(i / s.Pods)
	sa := fmt.Sprintf("app-%d", i%max(s.ServiceAccounts, 1))
	pod := fixture.Pod(i, sa)
	if s.injected(i) {
		res, err := mutate.Mutate(pod, mutate.DefaultConfig())
		if err == nil {
			res.Changes.Apply(pod)
		}
	}
	pod.Name = pod.GenerateName + strconv.FormatInt(int64(i)*7919%1e5, 36)
	pod.Namespace = ns
	pod.ObjectMeta = stamp(pod.ObjectMeta, i+4<<30, "f:spec")
	pod.ManagedFields[0].Manager = "kube-controller-manager"
	pod.ManagedFields = append(pod.ManagedFields, metav1.ManagedFieldsEntry{
		Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &created,
		FieldsType: "FieldsV1", Subresource: "status", FieldsV1: metav1.NewFieldsV1(
			`{"f:status":{"f:conditions":{},"f:containerStatuses":{},"f:hostIP":{},"f:initContainerStatuses":{},"f:phase":{},"f:podIP":{},"f:podIPs":{},"f:startTime":{}}}`),
	})
	pod.Spec.NodeName = fmt.Sprintf("node-%03d", i%300)
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, HostIP: "10.0.1.17", PodIP: fmt.Sprintf("10.%d.%d.%d", 64+i>>16&63, i>>8&255, i&255),
		StartTime: &created, QOSClass: corev1.PodQOSBurstable,
	}
	pod.Status.PodIPs = []corev1.PodIP{{IP: pod.Status.PodIP}}
	for _, t := range []corev1.PodConditionType{corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: created})
	}
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image + "@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
			ContainerID: fmt.Sprintf("containerd://%064x", i), Ready: true, Started: ptr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: created}},
		})
	}
	return pod
}

func ptr[T any](v T) *T { return &v }
