package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// Results of a live namespace read: the values of its metric.
const (
	liveOptedIn    = "opted-in"
	liveNotOptedIn = "not-opted-in"
	liveNotFound   = "not-found"
	liveError      = "error"
)

func namespaceMeta() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}

func labelledIn(ns *metav1.PartialObjectMetadata) bool {
	return ns.Labels[mutate.LabelInject] == mutate.InjectEnabled
}

// confirmOptIn reads the namespace from the API server when the cache says
// it is not opted in. GitOps creates a namespace and its workloads in one
// apply: kube-apiserver's namespaceSelector already sees the label while our
// informer has not yet, and skipping would start the pod without its token.
// kube-apiserver only sends pods of labelled namespaces, so this read happens
// on such races (and on forged requests), not on the warm path.
//
// A namespace that is really not labelled, or does not exist, is skipped
// with no writes. A failed read is the webhook's own failure (500): the
// namespaceSelector says the namespace is labelled, so skipping would
// silently start the pod without its token, whereas an error fails the
// creation visibly (failurePolicy Fail) and its controller retries it.
func (h *PodHandler) confirmOptIn(ctx context.Context, namespace string) (bool, error) {
	if h.LiveNamespaces == nil {
		return false, nil
	}
	if h.LiveReadTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.LiveReadTimeout)
		defer cancel()
	}
	ns := namespaceMeta()
	err := h.LiveNamespaces.Get(ctx, client.ObjectKey{Name: namespace}, ns)
	switch {
	case apierrors.IsNotFound(err):
		liveReads.WithLabelValues(liveNotFound).Inc()
		return false, nil
	case err != nil:
		liveReads.WithLabelValues(liveError).Inc()
		return false, fmt.Errorf("namespace %s is not labelled %s=%s in the webhook's cache, and reading it from the API server to confirm failed: %w",
			namespace, mutate.LabelInject, mutate.InjectEnabled, err)
	case labelledIn(ns):
		liveReads.WithLabelValues(liveOptedIn).Inc()
		return true, nil
	default:
		liveReads.WithLabelValues(liveNotOptedIn).Inc()
		return false, nil
	}
}
