package admission

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// admissions counts decisions. Every label takes a handful of fixed values
// (see verdict.go), never a namespace, pod or account name.
var admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "token_projector_admissions_total",
	Help: "Admission decisions by resource (pod, workload), outcome (mutated, unchanged, skipped, denied, errored) and reason.",
}, []string{"resource", "outcome", "reason"})

func init() {
	metrics.Registry.MustRegister(admissions)
}
