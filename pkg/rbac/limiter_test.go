package rbac

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// countingLimiter counts its waits and refuses them all if refuse is set.
type countingLimiter struct {
	waits  atomic.Int32
	refuse error
}

func (l *countingLimiter) Wait(context.Context) error {
	l.waits.Add(1)
	return l.refuse
}

// TestLimiterBeforeEveryAPICall: the Limiter is waited on before every
// create and live read, once each, and never on the warm path.
func TestLimiterBeforeEveryAPICall(t *testing.T) {
	const ns = "demo"
	labelled := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", Labels: map[string]string{mutate.LabelInject: mutate.InjectEnabled}}}
	unownedRole, unownedBinding := Role(ns, "app"), RoleBinding(ns, "app")
	unownedRole.Labels, unownedBinding.Labels = nil, nil
	for _, tc := range []struct {
		name    string
		objs    []client.Object
		restore bool
		calls   int32
	}{
		{"a new account (the live list of its namespace's RoleBindings, 3 creates)", nil, false, 4},
		{"a labelled account (read live before it is granted), with a Role and RoleBinding not ours but alike", []client.Object{labelled, unownedRole, unownedBinding}, false, 5},
		{"warm", []client.Object{ServiceAccount(ns, "app"), Role(ns, "app"), RoleBinding(ns, "app")}, false, 0},
		{"a restore", []client.Object{ServiceAccount(ns, "app")}, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newGatedAPI(tc.objs...)
			e := ensurerOn(api)
			limiter := &countingLimiter{}
			e.Limiter = limiter
			var err error
			if tc.restore {
				_, err = e.Restore(context.Background(), ns, "app")
			} else {
				_, err = e.Ensure(context.Background(), ns, "app", false)
			}
			if err != nil {
				t.Fatal(err)
			}
			if calls, waits := api.calls(), limiter.waits.Load(); calls != tc.calls || waits != tc.calls {
				t.Errorf("%d API calls, %d waits for the Limiter; want %d each", calls, waits, tc.calls)
			}
		})
	}
}

// TestLimiterRefuses: a Limiter that allows no call fails a cold ensure,
// and a restore, with an error that names the webhook's API rate limit and
// wraps its cause, having made no API call; a warm ensure still answers.
func TestLimiterRefuses(t *testing.T) {
	ctx := context.Background()
	cause := errors.New("no token before the deadline")
	limiter := &countingLimiter{refuse: cause}

	api := newGatedAPI(ServiceAccount("demo", "cold"))
	e := ensurerOn(api)
	e.Limiter = limiter
	for _, sa := range []string{"new", "cold"} {
		_, err := e.Ensure(ctx, "demo", sa, false)
		if !IsRateLimited(err) || !errors.Is(err, cause) || !strings.Contains(err.Error(), "the webhook's API rate limit (--api-qps, --api-burst) was reached before ") {
			t.Errorf("ensure of %s: got %v, want the rate limit named, wrapping its cause", sa, err)
		}
	}
	if _, err := e.Restore(ctx, "demo", "cold"); !IsRateLimited(err) || !errors.Is(err, cause) {
		t.Errorf("restore: got %v, want the rate limit", err)
	}
	if got := api.calls(); got != 0 {
		t.Errorf("%d API calls made past a Limiter that allows none", got)
	}

	warm := newGatedAPI(ServiceAccount("demo", "app"), Role("demo", "app"), RoleBinding("demo", "app"))
	e = ensurerOn(warm)
	e.Limiter = limiter
	waits := limiter.waits.Load()
	if res, err := e.Ensure(ctx, "demo", "app", false); err != nil || !res.RBAC {
		t.Errorf("warm ensure under a Limiter that allows nothing: %+v, %v", res, err)
	}
	if got := limiter.waits.Load() - waits; got != 0 {
		t.Errorf("the warm path waited %d times for the Limiter", got)
	}
}
