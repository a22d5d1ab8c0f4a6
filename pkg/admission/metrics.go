package admission

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// admissions counts decisions. Both labels take a handful of fixed values
// (see the reason constants), never a namespace, pod or account name.
var admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "token_projector_admissions_total",
	Help: "Admission decisions by outcome (mutated, unchanged, skipped, denied, errored) and reason.",
}, []string{"outcome", "reason"})

func init() {
	metrics.Registry.MustRegister(admissions)
}
