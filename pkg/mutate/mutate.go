package mutate

import corev1 "k8s.io/api/core/v1"

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
	return Result{Spec: spec, Changes: changes, Warnings: warnings}, nil
}
