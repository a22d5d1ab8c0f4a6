package rbac

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// warm answers by lookup alone, on the caller's goroutine, when there is
// nothing to write: the account is found and not eligible, or it is
// eligible and its Role and RoleBinding are found as wanted. That is what
// a flight would find, and it counts as a flight would; anything else (a
// miss, an error, a conflict) is left to a flight, which looks again and
// acts, and is counted there only. A flight per warm admission (a
// goroutine, a timer, a channel) was a tenth of its CPU; this path makes
// no API call, no deep copy and no goroutine.
//
// Its answers drawn from the cache alone are kept in the warm memo until
// an event of the namespace (warmMemo).
func (e *Ensurer) warm(ctx context.Context, namespace, serviceAccount string) (Result, bool) {
	memo := e.memo.accounts(namespace)
	if memo != nil {
		if res, ok := memo.Load(serviceAccount); ok {
			countWarm(res.(Result), cached, [2]source{cached, cached})
			return res.(Result), true
		}
	}
	acct, src, err := e.lookupAccount(ctx, namespace, serviceAccount)
	switch {
	case err != nil || src == missing:
		return Result{}, false
	case !acct.eligible():
		if memo != nil && src == cached {
			memo.Store(serviceAccount, Result{})
		}
		countWarm(Result{}, src, [2]source{})
		return Result{}, true
	}
	g := grants(namespace, serviceAccount)
	var found [len(g)]source
	for i, w := range g {
		s, err := e.lookupGrant(ctx, w)
		if err != nil || s == missing {
			return Result{}, false
		}
		found[i] = s
	}
	res := acct.result()
	if memo != nil && src == cached && found == [len(g)]source{cached, cached} {
		memo.Store(serviceAccount, res)
	}
	countWarm(res, src, found)
	return res, true
}

// countWarm counts a warm answer as a flight would: an account given no
// RBAC as unlabelled, else the account, its Role and its RoleBinding by
// where they were found.
func countWarm(res Result, account source, grants [2]source) {
	if !res.RBAC {
		warmUnlabelled.Inc()
		return
	}
	warmCount(kindServiceAccount, account).Inc()
	warmCount(kindRole, grants[0]).Inc()
	warmCount(kindRoleBinding, grants[1]).Inc()
}

// The warm path's counters, resolved once: a label lookup per count was
// three hashes per admission.
var (
	warmUnlabelled = ensures.WithLabelValues(kindServiceAccount, "unlabelled")
	warmCounters   = func() map[[2]string]prometheus.Counter {
		m := map[[2]string]prometheus.Counter{}
		for _, kind := range []string{kindServiceAccount, kindRole, kindRoleBinding} {
			for _, s := range []source{cached, remembered} {
				m[[2]string{kind, s.result()}] = ensures.WithLabelValues(kind, s.result())
			}
		}
		return m
	}()
)

func warmCount(kind string, s source) prometheus.Counter {
	return warmCounters[[2]string{kind, s.result()}]
}
