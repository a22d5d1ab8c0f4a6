package reconcile

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/token-projector/token-projector/pkg/mutate"
)

// TestPodCacheSelectsInjectedPods: the pod informer's selector takes a pod
// the webhook's own mutation labelled, and no other: not one without
// labels, not one whose label says otherwise, not one opted out.
func TestPodCacheSelectsInjectedPods(t *testing.T) {
	var sel labels.Selector
	for obj, by := range CacheByObject(true) {
		if _, ok := obj.(*corev1.Pod); ok {
			sel = by.Label
		}
	}
	if sel == nil {
		t.Fatal("the pod cache has no label selector: it would hold every pod of the cluster")
	}

	injected := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{mutate.AnnotationAudience: "vault"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
	}
	res, err := mutate.Mutate(injected, mutate.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	res.Changes.Apply(injected)
	for name, c := range map[string]struct {
		labels map[string]string
		want   bool
	}{
		"injected by the webhook": {injected.Labels, true},
		"no labels":               {nil, false},
		"other labels":            {map[string]string{"app": "web"}, false},
		"label false":             {map[string]string{mutate.LabelInjected: "false"}, false},
		"opted out":               {map[string]string{mutate.LabelInject: mutate.InjectDisabled}, false},
	} {
		if got := sel.Matches(labels.Set(c.labels)); got != c.want {
			t.Errorf("%s (%v): selected %v, want %v", name, c.labels, got, c.want)
		}
	}
}
