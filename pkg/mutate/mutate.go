package mutate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
)

// Result is the outcome of Mutate for a pod that asks for injection.
type Result struct {
	Spec     Spec
	Changes  Changes
	Warnings []string
}

// Mutate validates pod's annotations and plans the changes they ask for.
// Callers check Triggered first: a pod without the audience annotation is
// reported as an empty audience.
func Mutate(pod *corev1.Pod, cfg Config) (Result, error) {
	spec, warnings, err := Parse(pod.Annotations, &pod.Spec, cfg)
	if err != nil {
		return Result{}, err
	}
	changes, err := Plan(&spec, pod)
	if err != nil {
		return Result{}, err
	}
	if err := checkAnnotationsSize(pod.Annotations, changes.Status); err != nil {
		return Result{}, err
	}
	return Result{Spec: spec, Changes: changes, Warnings: warnings}, nil
}

// Restate makes the status annotation of pod, the pod Mutate planned r
// for, record id, what was really ensured for its account, instead of the
// Spec's AssumedIdentity. It cannot break the annotation size limit Mutate
// checked: the assumed status is the longest.
func (r *Result) Restate(pod *corev1.Pod, id Identity) {
	if id == r.Spec.AssumedIdentity() {
		return
	}
	r.Changes.Status = statusChange(&r.Spec, pod, runsAs(&r.Spec, pod), id)
}

// checkAnnotationsSize refuses a pod whose annotations, with the status
// annotation we would write, exceed kube-apiserver's limit: it validates
// after every webhook, so such a pod would be rejected after we had ensured
// its identity.
func checkAnnotationsSize(annotations map[string]string, status string) error {
	total := 0
	for k, v := range annotations {
		if k != AnnotationStatus {
			total += len(k) + len(v)
		}
	}
	if status == "" {
		status = annotations[AnnotationStatus]
	}
	withStatus := total + len(AnnotationStatus) + len(status)
	if withStatus <= apimachineryvalidation.TotalAnnotationSizeLimitB {
		return nil
	}
	return invalid("metadata.annotations", fmt.Sprintf("%d bytes", total),
		"annotations totalling at most %d bytes, including the %d bytes of %s this webhook adds",
		apimachineryvalidation.TotalAnnotationSizeLimitB, len(AnnotationStatus)+len(status), AnnotationStatus)
}
