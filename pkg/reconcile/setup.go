package reconcile

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// Field indexes of the caches: the accounts a pod or a workload template
// names.
const (
	indexPodAccount      = "tokenProjector.podAccount"
	indexTemplateAccount = "tokenProjector.templateAccount"
)

// workloadKind is one workload kind whose pod template names an account.
type workloadKind struct {
	kind     string
	obj      func() client.Object
	list     func() client.ObjectList
	template func(client.Object) *corev1.PodTemplateSpec
	// trim keeps the name and the template's accounts only.
	trim func(client.Object) client.Object
}

var workloadKinds = []workloadKind{
	{
		kind: "Deployment", obj: func() client.Object { return &appsv1.Deployment{} }, list: func() client.ObjectList { return &appsv1.DeploymentList{} },
		template: func(o client.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.Deployment).Spec.Template },
		trim: func(o client.Object) client.Object {
			return &appsv1.Deployment{ObjectMeta: trimMeta(o), Spec: appsv1.DeploymentSpec{Template: trimTemplate(&o.(*appsv1.Deployment).Spec.Template)}}
		},
	},
	{
		kind: "StatefulSet", obj: func() client.Object { return &appsv1.StatefulSet{} }, list: func() client.ObjectList { return &appsv1.StatefulSetList{} },
		template: func(o client.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.StatefulSet).Spec.Template },
		trim: func(o client.Object) client.Object {
			return &appsv1.StatefulSet{ObjectMeta: trimMeta(o), Spec: appsv1.StatefulSetSpec{Template: trimTemplate(&o.(*appsv1.StatefulSet).Spec.Template)}}
		},
	},
	{
		kind: "DaemonSet", obj: func() client.Object { return &appsv1.DaemonSet{} }, list: func() client.ObjectList { return &appsv1.DaemonSetList{} },
		template: func(o client.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.DaemonSet).Spec.Template },
		trim: func(o client.Object) client.Object {
			return &appsv1.DaemonSet{ObjectMeta: trimMeta(o), Spec: appsv1.DaemonSetSpec{Template: trimTemplate(&o.(*appsv1.DaemonSet).Spec.Template)}}
		},
	},
	{
		kind: "ReplicaSet", obj: func() client.Object { return &appsv1.ReplicaSet{} }, list: func() client.ObjectList { return &appsv1.ReplicaSetList{} },
		template: func(o client.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.ReplicaSet).Spec.Template },
		trim: func(o client.Object) client.Object {
			return &appsv1.ReplicaSet{ObjectMeta: trimMeta(o), Spec: appsv1.ReplicaSetSpec{Template: trimTemplate(&o.(*appsv1.ReplicaSet).Spec.Template)}}
		},
	},
	{
		kind: "Job", obj: func() client.Object { return &batchv1.Job{} }, list: func() client.ObjectList { return &batchv1.JobList{} },
		template: func(o client.Object) *corev1.PodTemplateSpec { return &o.(*batchv1.Job).Spec.Template },
		trim: func(o client.Object) client.Object {
			return &batchv1.Job{ObjectMeta: trimMeta(o), Spec: batchv1.JobSpec{Template: trimTemplate(&o.(*batchv1.Job).Spec.Template)}}
		},
	},
	{
		kind: "CronJob", obj: func() client.Object { return &batchv1.CronJob{} }, list: func() client.ObjectList { return &batchv1.CronJobList{} },
		template: func(o client.Object) *corev1.PodTemplateSpec {
			return &o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template
		},
		trim: func(o client.Object) client.Object {
			return &batchv1.CronJob{ObjectMeta: trimMeta(o), Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{
				Spec: batchv1.JobSpec{Template: trimTemplate(&o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template)},
			}}}
		},
	},
}

// CachedObjects are the informers the reconciler reads, for pkg/server to
// declare so that readiness waits for them: pods always (restoring needs
// them), workloads only with garbage collection on (gc).
func CachedObjects(gc bool) []client.Object {
	objs := []client.Object{&corev1.Pod{}}
	if gc {
		for _, k := range workloadKinds {
			objs = append(objs, k.obj())
		}
	}
	return objs
}

// CacheByObject are the cache settings of those informers: pods only if the
// webhook injected them (InjectedPods), and each object cut down to what the
// reconciler reads before it is stored, so that memory follows the pods the
// webhook manages, not the cluster's, and a cluster's ReplicaSets cost a few
// hundred bytes each.
func CacheByObject(gc bool) map[client.Object]cache.ByObject {
	by := map[client.Object]cache.ByObject{&corev1.Pod{}: {Label: InjectedPods, Transform: TrimPod}}
	if gc {
		for _, k := range workloadKinds {
			by[k.obj()] = cache.ByObject{Transform: trimmer(k)}
		}
	}
	return by
}

// InjectedPods selects the pods the webhook injected: whether such a pod
// runs as an account is what makes restoring look at it (what is restored
// is decided by the account and its objects alone), and collection takes a
// live look at all of an account's pods before it deletes anything.
var InjectedPods = labels.SelectorFromSet(labels.Set{mutate.LabelInjected: mutate.InjectedTrue})

// TrimPod keeps of a pod its identity and its account: all that restoring
// and collecting read. Nothing else on a pod is read, its annotations
// least of all: any pod author can write them.
func TrimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone: left as it is
	}
	return &corev1.Pod{ObjectMeta: trimMeta(pod), Spec: corev1.PodSpec{ServiceAccountName: podAccount(&pod.Spec)}}, nil
}

func trimmer(k workloadKind) toolscache.TransformFunc {
	want := reflect.TypeOf(k.obj())
	return func(obj any) (any, error) {
		if reflect.TypeOf(obj) != want {
			return obj, nil // a tombstone: left as it is
		}
		return k.trim(obj.(client.Object)), nil
	}
}

func trimMeta(o metav1.Object) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: o.GetName(), Namespace: o.GetNamespace(), UID: o.GetUID(), ResourceVersion: o.GetResourceVersion(),
		CreationTimestamp: o.GetCreationTimestamp(), DeletionTimestamp: o.GetDeletionTimestamp(),
	}
}

func trimTemplate(t *corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	out := corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: podAccount(&t.Spec)}}
	if sa, ok := t.Annotations[mutate.AnnotationServiceAccount]; ok {
		out.Annotations = map[string]string{mutate.AnnotationServiceAccount: sa}
	}
	return out
}

// podAccount is the account a pod spec runs as, reading the deprecated field
// when the current one is empty, as kube-apiserver does.
func podAccount(spec *corev1.PodSpec) string {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName
	}
	return spec.DeprecatedServiceAccount
}

// templateAccounts are the accounts a pod template names: in its spec, and
// in the service-account annotation the webhook turns into the spec's.
func templateAccounts(t *corev1.PodTemplateSpec) []string {
	var out []string
	for _, sa := range []string{podAccount(&t.Spec), t.Annotations[mutate.AnnotationServiceAccount]} {
		if sa != "" && sa != mutate.DefaultServiceAccount && !slices.Contains(out, sa) {
			out = append(out, sa)
		}
	}
	return out
}

// SetupWithManager registers the field indexes, the controller, and the
// reconciler itself as a runnable that starts on election (Start). Call it
// before the manager starts.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.mu.Lock()
	r.started = r.now()
	r.mu.Unlock()
	if err := mgr.Add(r); err != nil {
		return fmt.Errorf("adding the reconciler's election clock: %w", err)
	}

	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, indexPodAccount, func(o client.Object) []string {
		return []string{podAccount(&o.(*corev1.Pod).Spec)}
	}); err != nil {
		return fmt.Errorf("indexing pods by account: %w", err)
	}
	gc := r.TTL > 0
	if gc {
		for _, k := range workloadKinds {
			if err := mgr.GetFieldIndexer().IndexField(ctx, k.obj(), indexTemplateAccount, func(o client.Object) []string {
				return templateAccounts(k.template(o))
			}); err != nil {
				return fmt.Errorf("indexing %s by template account: %w", k.kind, err)
			}
		}
	}

	saMeta := &metav1.PartialObjectMetadata{}
	saMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	skipNameValidation := true // tests run several webhooks in one process
	b := ctrl.NewControllerManagedBy(mgr).
		Named("token-identities").
		WithOptions(controller.Options{MaxConcurrentReconciles: 2, SkipNameValidation: &skipNameValidation}).
		// A pod's account never changes, and only its creation and deletion
		// matter here: its frequent status updates are skipped.
		Watches(&corev1.Pod{}, r.touching(func(o client.Object) []string { return []string{podAccount(&o.(*corev1.Pod).Spec)} }),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		Watches(&rbacv1.Role{}, r.enqueueIf(managed, func(o client.Object) []string { return accountOfRBAC(o.GetName()) })).
		Watches(&rbacv1.RoleBinding{}, r.enqueueIf(managed, func(o client.Object) []string { return accountOfRBAC(o.GetName()) })).
		// An account's own events matter while it is eligible: created by
		// the webhook, or labelled by its owner (labelling it lets its
		// injected pods' account mint tokens, as a new admission would).
		WatchesMetadata(saMeta, r.enqueueIf(eligible, func(o client.Object) []string { return []string{o.GetName()} }))
	if gc {
		for _, k := range workloadKinds {
			b = b.Watches(k.obj(), r.touching(func(o client.Object) []string { return templateAccounts(k.template(o)) }))
		}
	}
	return b.Complete(r)
}

// touching maps a pod or workload event to the identities it names, and
// records them as used now: a deleted pod used its account until now.
func (r *Reconciler) touching(accounts func(client.Object) []string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		for _, sa := range accounts(o) {
			if sa == "" || sa == mutate.DefaultServiceAccount {
				continue
			}
			id := types.NamespacedName{Namespace: o.GetNamespace(), Name: sa}
			r.touch(id)
			reqs = append(reqs, reconcile.Request{NamespacedName: id})
		}
		return reqs
	})
}

// enqueueIf maps an event of an object that passes keep to its identity;
// Roles and RoleBindings without the managed-by label are none of the
// reconciler's business, nor are accounts nobody made eligible.
func (r *Reconciler) enqueueIf(keep func(metav1.Object) bool, accounts func(client.Object) []string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if !keep(o) {
			return nil
		}
		var reqs []reconcile.Request
		for _, sa := range accounts(o) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: sa}})
		}
		return reqs
	})
}

func managed(o metav1.Object) bool { return rbac.IsManaged(o) }

func accountOfRBAC(name string) []string {
	sa, ok := strings.CutSuffix(name, mutate.RBACNameSuffix)
	if !ok || sa == "" {
		return nil
	}
	return []string{sa}
}
