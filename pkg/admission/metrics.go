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

// liveReads counts the reads of a namespace from the API server that confirm
// a "not opted in" from the cache, by result (opted-in: the cache was behind).
var liveReads = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "token_projector_namespace_live_reads_total",
	Help: "Namespaces read from the API server to confirm a cache's \"not opted in\", by result (opted-in, not-opted-in, not-found, error).",
}, []string{"result"})

func init() {
	metrics.Registry.MustRegister(admissions, liveReads)
}
