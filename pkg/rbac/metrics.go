package rbac

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Counters of the Ensurer's API traffic: on the warm path all stay still.
var (
	apiWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "token_projector_api_writes_total",
		Help: "Create calls made to the API server, by object kind and result (created, exists, error).",
	}, []string{"kind", "result"})
	apiReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "token_projector_api_reads_total",
		Help: "Live reads made to the API server (after a create met AlreadyExists; of the account a restore is for, or a cached one before it is granted token RBAC; before an account is created, the list of its namespace's RoleBindings (kind RoleBinding), and the account if bindings name it), by object kind.",
	}, []string{"kind"})
	ensures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "token_projector_ensure_total",
		Help: "Objects ensured on admission and restore, by kind and result (cached, created, existing, conflict, error; for Roles and RoleBindings also remembered: one of our name not labelled as ours but identical, accepted less than a minute ago; for ServiceAccounts also unlabelled: an existing account neither created by the webhook nor labelled token-projector.io/inject=enabled, given no RBAC; missing: a restore of an account that no longer exists, which is never re-created; bound: an account not created because a RoleBinding or ClusterRoleBinding token-projector did not write names it).",
	}, []string{"kind", "result"})
	cacheMisses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "token_projector_cache_misses_total",
		Help: "Ensure lookups that did not find the object in the informer cache, by object kind.",
	}, []string{"kind"})
)

func init() {
	metrics.Registry.MustRegister(apiWrites, apiReads, ensures, cacheMisses)
}
