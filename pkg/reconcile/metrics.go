package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Counters of what the reconciler changed. Their creates also count in
// token_projector_api_writes_total, since they go through the same Ensurer.
var (
	restored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "token_projector_restored_total",
		Help: "Objects re-created for the identity of a pod the webhook admitted, by kind.",
	}, []string{"kind"})
	deletes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "token_projector_gc_deletes_total",
		Help: "Delete calls for unused managed objects, by kind and result (deleted, gone, changed, error).",
	}, []string{"kind", "result"})
)

func init() {
	metrics.Registry.MustRegister(restored, deletes)
}
