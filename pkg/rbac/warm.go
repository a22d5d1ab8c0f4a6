package rbac

import "context"

// warm answers by lookup alone, on the caller's goroutine, when there is
// nothing to write: the account is found and not eligible, or it is
// eligible and its Role and RoleBinding are found as wanted. That is what
// a flight would find, and it counts as a flight would; anything else (a
// miss, an error, a conflict) is left to a flight, which looks again and
// acts, and is counted there only. A flight per warm admission (a
// goroutine, a timer, a channel) was a tenth of its CPU; this path makes
// no API call, no deep copy and no goroutine.
func (e *Ensurer) warm(ctx context.Context, namespace, serviceAccount string) (Result, bool) {
	acct, src, err := e.lookupAccount(ctx, namespace, serviceAccount)
	switch {
	case err != nil || src == missing:
		return Result{}, false
	case !acct.eligible():
		ensures.WithLabelValues(kindServiceAccount, "unlabelled").Inc()
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
	ensures.WithLabelValues(kindServiceAccount, src.result()).Inc()
	for i, w := range g {
		ensures.WithLabelValues(w.kind, found[i].result()).Inc()
	}
	return acct.result(), true
}
