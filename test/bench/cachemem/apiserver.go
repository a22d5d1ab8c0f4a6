package cachemem

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/pkg/rbac"
)

// Shape is the population of the synthetic cluster.
type Shape struct {
	// Namespaces are opted in; each holds a "default" ServiceAccount.
	Namespaces int
	// ServiceAccounts per namespace were created by the webhook: labelled as
	// ours, each with its Role and RoleBinding when RBAC is set.
	ServiceAccounts int
	RBAC            bool
	// Pods per namespace, running.
	Pods int
	// InjectedEvery: every n-th pod (by index over the cluster) was injected
	// by the webhook and carries its label; 0 or 1: every pod.
	InjectedEvery int
	// RoleBindings per namespace were not written by the webhook (a Helm
	// release's, say): each binds a ClusterRole to one of the namespace's
	// ServiceAccounts and a group.
	RoleBindings int
	// ClusterRoleBindings, in all, each binding a ClusterRole to one
	// ServiceAccount of some namespace, a user and a group.
	ClusterRoleBindings int
}

// injected reports whether pod i was injected by the webhook.
func (s Shape) injected(i int) bool {
	return s.InjectedEvery <= 1 || i%s.InjectedEvery == 0
}

// resourceVersion is the one revision the synthetic cluster is at.
const resourceVersion = "4711"

// created is when every synthetic object was created.
var created = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

// apiServer is a stand-in for kube-apiserver that serves discovery and
// list/watch of Namespaces, ServiceAccounts, pods, Roles, RoleBindings and
// ClusterRoleBindings, each
// object generated on the fly as kube-apiserver returns it (uid,
// resourceVersion, creationTimestamp, managedFields), so that it holds no
// memory of its own and the heap of the process is the cache's. It answers a
// list page by page (limit/continue) and a watch-list by streaming the
// objects then the initial-events-end bookmark, whichever the client uses.
type apiServer struct {
	shape Shape

	mu sync.Mutex
	// requests counts requests by "verb path", to check what the cache asked.
	requests map[string]int
	// unexpected are requests it could not answer.
	unexpected []string
}

func newAPIServer(shape Shape) *apiServer {
	return &apiServer{shape: shape, requests: map[string]int{}}
}

// resource is one kind the synthetic cluster holds.
type resource struct {
	kind, listKind, apiVersion string
	count                      func(Shape) int
	// object builds item i (no kind or apiVersion: a typed list item).
	object func(Shape, int) any
	meta   func(Shape, int) metav1.ObjectMeta
}

var resources = map[string]resource{
	"/api/v1/namespaces": {
		kind: "Namespace", listKind: "NamespaceList", apiVersion: "v1",
		count: func(s Shape) int { return s.Namespaces },
		meta:  namespaceMeta,
	},
	"/api/v1/serviceaccounts": {
		kind: "ServiceAccount", listKind: "ServiceAccountList", apiVersion: "v1",
		count: func(s Shape) int { return s.Namespaces * (1 + s.ServiceAccounts) },
		meta:  serviceAccountMeta,
	},
	"/api/v1/pods": {
		kind: "Pod", listKind: "PodList", apiVersion: "v1",
		count:  func(s Shape) int { return s.Namespaces * s.Pods },
		object: runningPod,
	},
	"/apis/rbac.authorization.k8s.io/v1/roles": {
		kind: "Role", listKind: "RoleList", apiVersion: "rbac.authorization.k8s.io/v1",
		count: rbacCount,
		object: func(s Shape, i int) any {
			ns, sa := ours(s, i)
			r := rbac.Role(ns, sa)
			r.TypeMeta = metav1.TypeMeta{}
			r.ObjectMeta = stamp(r.ObjectMeta, i, "f:rules")
			return r
		},
	},
	"/apis/rbac.authorization.k8s.io/v1/rolebindings": {
		kind: "RoleBinding", listKind: "RoleBindingList", apiVersion: "rbac.authorization.k8s.io/v1",
		count: func(s Shape) int { return rbacCount(s) + s.Namespaces*s.RoleBindings },
		object: func(s Shape, i int) any {
			if i >= rbacCount(s) {
				return foreignRoleBinding(s, i-rbacCount(s))
			}
			ns, sa := ours(s, i)
			rb := rbac.RoleBinding(ns, sa)
			rb.TypeMeta = metav1.TypeMeta{}
			rb.ObjectMeta = stamp(rb.ObjectMeta, i+1<<30, "f:roleRef", "f:subjects")
			return rb
		},
	},
	"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings": {
		kind: "ClusterRoleBinding", listKind: "ClusterRoleBindingList", apiVersion: "rbac.authorization.k8s.io/v1",
		count:  func(s Shape) int { return s.ClusterRoleBindings },
		object: clusterRoleBinding,
	},
}

// foreignLabels are the labels of a binding a Helm release installed.
func foreignLabels(name string) map[string]string {
	return map[string]string{rbac.LabelManagedBy: "Helm", "app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
}

// foreignRoleBinding is the i-th RoleBinding not written by the webhook:
// the namespace's i-th, binding ClusterRole edit to a ServiceAccount of the
// namespace and to a group.
func foreignRoleBinding(s Shape, i int) *rbacv1.RoleBinding {
	ns, name := namespaceName(i/s.RoleBindings), fmt.Sprintf("release-%d", i%s.RoleBindings)
	return &rbacv1.RoleBinding{
		ObjectMeta: stamp(metav1.ObjectMeta{Namespace: ns, Name: name, Labels: foreignLabels(name),
			Annotations: map[string]string{"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": ns}}, i+4<<30, "f:roleRef", "f:subjects"),
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name},
			{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "team:" + ns},
		},
	}
}

// clusterRoleBinding is the i-th ClusterRoleBinding: ClusterRole view to
// a ServiceAccount of namespace i, a user and a group.
func clusterRoleBinding(s Shape, i int) any {
	ns, name := namespaceName(i%max(s.Namespaces, 1)), fmt.Sprintf("operator-%d", i)
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: stamp(metav1.ObjectMeta{Name: name, Labels: foreignLabels(name)}, i+5<<30, "f:roleRef", "f:subjects"),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name + "@example.com"},
			{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "operators"},
		},
	}
}

func rbacCount(s Shape) int {
	if !s.RBAC {
		return 0
	}
	return s.Namespaces * s.ServiceAccounts
}

func namespaceName(j int) string { return fmt.Sprintf("team-%05d", j) }

// ours is the namespace and name of the i-th ServiceAccount the webhook made.
func ours(s Shape, i int) (string, string) {
	return namespaceName(i / s.ServiceAccounts), fmt.Sprintf("app-%d", i%s.ServiceAccounts)
}

func namespaceMeta(_ Shape, j int) metav1.ObjectMeta {
	name := namespaceName(j)
	m := metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelMetadataName: name, mutate.LabelInject: mutate.InjectEnabled,
	}}
	m = stamp(m, j+2<<30)
	m.ManagedFields[0].Manager = "kubectl-create"
	return m
}

// serviceAccountMeta is the i-th ServiceAccount: each namespace's "default",
// as the ServiceAccount controller makes it, then the webhook's.
func serviceAccountMeta(s Shape, i int) metav1.ObjectMeta {
	per := 1 + s.ServiceAccounts
	ns := namespaceName(i / per)
	if i%per == 0 {
		return metav1.ObjectMeta{Namespace: ns, Name: mutate.DefaultServiceAccount,
			UID: uid(i + 3<<30), ResourceVersion: strconv.Itoa(1000 + i), CreationTimestamp: created}
	}
	ns, name := ours(s, i/per*s.ServiceAccounts+i%per-1)
	return stamp(rbac.ServiceAccount(ns, name).ObjectMeta, i+3<<30)
}

// stamp adds what kube-apiserver adds to an object the webhook created.
func stamp(m metav1.ObjectMeta, i int, fields ...string) metav1.ObjectMeta {
	m.UID = uid(i)
	m.ResourceVersion = strconv.Itoa(1000 + i%(1<<30))
	m.CreationTimestamp = created
	set := map[string]any{"f:metadata": map[string]any{"f:labels": labelFields(m.Labels)}}
	for _, f := range fields {
		set[f] = map[string]any{}
	}
	raw, _ := json.Marshal(set) // maps of strings: cannot fail
	m.ManagedFields = []metav1.ManagedFieldsEntry{{
		Manager: "webhook", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		Time: &created, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(raw)),
	}}
	return m
}

func labelFields(labels map[string]string) map[string]any {
	f := map[string]any{".": map[string]any{}}
	for k := range labels {
		f["f:"+k] = map[string]any{}
	}
	return f
}

func uid(i int) types.UID {
	return types.UID(fmt.Sprintf("%08x-5e1f-4c0d-9a7b-%012x", i, i*2654435761%(1<<48)))
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests[r.Method+" "+r.URL.Path]++
	a.mu.Unlock()
	if r.Method != http.MethodGet {
		a.notFound(w, r)
		return
	}
	if doc, ok := discovery[r.URL.Path]; ok {
		writeJSON(w, doc)
		return
	}
	res, ok := resources[r.URL.Path]
	if !ok {
		res, ok = builtin[r.URL.Path]
	}
	if !ok {
		a.notFound(w, r)
		return
	}
	metadataOnly := strings.Contains(r.Header.Get("Accept"), "as=PartialObjectMetadata")
	q := r.URL.Query()
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		a.watch(w, r, res, metadataOnly, q.Get("sendInitialEvents") == "true")
		return
	}
	a.list(w, r, res, metadataOnly)
}

func (a *apiServer) notFound(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.unexpected = append(a.unexpected, r.Method+" "+r.URL.String())
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(&metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound, Message: "not served here"})
}

// item is object i as a list item or watch event object.
func item(s Shape, res resource, metadataOnly bool, i int) any {
	switch {
	case metadataOnly && res.meta != nil:
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}, ObjectMeta: res.meta(s, i)}
	case metadataOnly:
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}, ObjectMeta: metaOf(res.object(s, i))}
	case res.object != nil:
		return res.object(s, i)
	case res.meta != nil:
		return map[string]any{"metadata": res.meta(s, i)}
	default:
		return nil // never reached: count is 0
	}
}

// withKind sets the kind a watch event's object must carry (list items of a
// typed list carry none).
func withKind(obj any, res resource) any {
	switch o := obj.(type) {
	case *corev1.Pod:
		o.TypeMeta = metav1.TypeMeta{Kind: res.kind, APIVersion: res.apiVersion}
	case *rbacv1.Role:
		o.TypeMeta = metav1.TypeMeta{Kind: res.kind, APIVersion: res.apiVersion}
	case *rbacv1.RoleBinding:
		o.TypeMeta = metav1.TypeMeta{Kind: res.kind, APIVersion: res.apiVersion}
	case *rbacv1.ClusterRoleBinding:
		o.TypeMeta = metav1.TypeMeta{Kind: res.kind, APIVersion: res.apiVersion}
	case map[string]any:
		o["kind"], o["apiVersion"] = res.kind, res.apiVersion
	}
	return obj
}

func metaOf(obj any) metav1.ObjectMeta {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o.ObjectMeta
	case *rbacv1.Role:
		return o.ObjectMeta
	case *rbacv1.RoleBinding:
		return o.ObjectMeta
	case *rbacv1.ClusterRoleBinding:
		return o.ObjectMeta
	}
	return metav1.ObjectMeta{}
}

// selected are the objects from index from on that match the request's
// label selector, as kube-apiserver filters them: at most limit (<= 0: all),
// and the index to continue from (-1: none left).
func (a *apiServer) selected(r *http.Request, res resource, metadataOnly bool, from, limit int) ([]any, int, error) {
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		return nil, -1, err
	}
	total := res.count(a.shape)
	var out []any
	for i := from; i < total; i++ {
		if limit > 0 && len(out) == limit {
			return out, i, nil
		}
		obj := item(a.shape, res, metadataOnly, i)
		if sel.Empty() || sel.Matches(labels.Set(labelsOf(obj))) {
			out = append(out, obj)
		}
	}
	return out, -1, nil
}

// labelsOf are the labels of an item.
func labelsOf(obj any) map[string]string {
	switch o := obj.(type) {
	case *metav1.PartialObjectMetadata:
		return o.Labels
	case map[string]any:
		if m, ok := o["metadata"].(metav1.ObjectMeta); ok {
			return m.Labels
		}
		return nil
	}
	return metaOf(obj).Labels
}

func (a *apiServer) list(w http.ResponseWriter, r *http.Request, res resource, metadataOnly bool) {
	q := r.URL.Query()
	from, _ := strconv.Atoi(q.Get("continue"))
	limit, _ := strconv.Atoi(q.Get("limit"))
	items, next, err := a.selected(r, res, metadataOnly, from, limit)
	if err != nil {
		a.notFound(w, r)
		return
	}
	listMeta := map[string]string{"resourceVersion": resourceVersion}
	if next >= 0 {
		listMeta["continue"] = strconv.Itoa(next)
	}
	kind, apiVersion := res.listKind, res.apiVersion
	if metadataOnly {
		kind, apiVersion = "PartialObjectMetadataList", "meta.k8s.io/v1"
	}
	w.Header().Set("Content-Type", "application/json")
	head, _ := json.Marshal(map[string]any{"kind": kind, "apiVersion": apiVersion, "metadata": listMeta})
	_, _ = w.Write(head[:len(head)-1])
	_, _ = w.Write([]byte(`,"items":[`))
	enc := json.NewEncoder(w)
	for i, obj := range items {
		if i > 0 {
			_, _ = w.Write([]byte(","))
		}
		_ = enc.Encode(obj)
	}
	_, _ = w.Write([]byte("]}"))
}

// watch streams the initial events when asked (watch-list), then the
// bookmark that ends them, then nothing until the client goes away.
func (a *apiServer) watch(w http.ResponseWriter, r *http.Request, res resource, metadataOnly, initialEvents bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if initialEvents {
		items, _, err := a.selected(r, res, metadataOnly, 0, 0)
		if err != nil {
			return
		}
		for _, obj := range items {
			_ = enc.Encode(map[string]any{"type": "ADDED", "object": withKind(obj, res)})
		}
		kind, apiVersion := res.kind, res.apiVersion
		if metadataOnly {
			kind, apiVersion = "PartialObjectMetadata", "meta.k8s.io/v1"
		}
		_ = enc.Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{
			"kind": kind, "apiVersion": apiVersion,
			"metadata": map[string]any{"resourceVersion": resourceVersion, "annotations": map[string]string{metav1.InitialEventsAnnotationKey: "true"}},
		}})
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	<-r.Context().Done()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// builtin is every built-in kind of client-go's scheme, by its list path:
// the synthetic API server discovers them all and serves the ones it holds
// no objects of as empty, so that whatever else the manager watches syncs.
var builtin, discovery = builtinResources()

// clusterScoped are the built-in kinds that are not namespaced.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ComponentStatus": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "StorageClass": true, "CSIDriver": true, "CSINode": true,
	"VolumeAttachment": true, "PriorityClass": true, "RuntimeClass": true, "IngressClass": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true,
	"CertificateSigningRequest": true, "ClusterTrustBundle": true, "FlowSchema": true,
	"PriorityLevelConfiguration": true, "StorageVersion": true, "StorageVersionMigration": true,
	"DeviceClass": true, "ResourceSlice": true, "IPAddress": true, "ServiceCIDR": true, "VolumeAttributesClass": true,
	"TokenReview": true, "SelfSubjectReview": true, "SubjectAccessReview": true, "SelfSubjectAccessReview": true,
	"SelfSubjectRulesReview": true,
}

func builtinResources() (map[string]resource, map[string]any) {
	byPath := map[string]resource{}
	lists := map[schema.GroupVersion]*metav1.APIResourceList{}
	for gvk := range clientgoscheme.Scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || strings.HasSuffix(gvk.Kind, "List") ||
			!clientgoscheme.Scheme.Recognizes(gvk.GroupVersion().WithKind(gvk.Kind+"List")) {
			continue
		}
		plural, singular := meta.UnsafeGuessKindToResource(gvk)
		gv := gvk.GroupVersion()
		prefix := "/apis/" + gv.String()
		if gv.Group == "" {
			prefix = "/api/" + gv.Version
		}
		byPath[prefix+"/"+plural.Resource] = resource{kind: gvk.Kind, listKind: gvk.Kind + "List", apiVersion: gv.String(), count: func(Shape) int { return 0 }}
		l := lists[gv]
		if l == nil {
			l = &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
			lists[gv] = l
		}
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: plural.Resource, SingularName: singular.Resource,
			Namespaced: !clusterScoped[gvk.Kind], Kind: gvk.Kind, Verbs: metav1.Verbs{"create", "get", "list", "watch"}})
	}
	docs := map[string]any{}
	groups := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	byGroup := map[string]*metav1.APIGroup{}
	for gv, l := range lists {
		if gv.Group == "" {
			docs["/api/"+gv.Version] = l
			continue
		}
		docs["/apis/"+gv.String()] = l
		g := byGroup[gv.Group]
		if g == nil {
			g = &metav1.APIGroup{Name: gv.Group}
			byGroup[gv.Group] = g
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		g.Versions = append(g.Versions, v)
		// The highest version by Kubernetes' ordering is preferred.
		if g.PreferredVersion.Version == "" || version.CompareKubeAwareVersionStrings(v.Version, g.PreferredVersion.Version) > 0 {
			g.PreferredVersion = v
		}
	}
	for _, g := range byGroup {
		groups.Groups = append(groups.Groups, *g)
	}
	docs["/apis"] = groups
	docs["/api"] = &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: "127.0.0.1"}}}
	return byPath, docs
}
