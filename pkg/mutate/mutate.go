package mutate

import (
	"fmt"
	"maps"
	"strconv"

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

// RecordExpiration makes the Changes also set the expiration annotation to
// the lifetime the Spec applied, in whole seconds, when pod (the pod Mutate
// planned r for) has none. Offline injection asks for it: the volume it
// writes carries that lifetime, and without the annotation the webhook would
// compute the lifetime again, from a default that may differ where the pod
// is admitted (a namespace's default-expiration), and deny the pod. It
// refuses a pod whose annotations would then exceed kube-apiserver's limit.
func (r *Result) RecordExpiration(pod *corev1.Pod) error {
	if _, ok := pod.Annotations[AnnotationExpiration]; ok {
		return nil
	}
	value := strconv.FormatInt(r.Spec.ExpirationSeconds, 10)
	with := maps.Clone(pod.Annotations)
	if with == nil {
		with = map[string]string{}
	}
	with[AnnotationExpiration] = value
	if err := checkAnnotationsSize(with, r.Changes.Status); err != nil {
		return err
	}
	r.Changes.Expiration = value
	return nil
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
