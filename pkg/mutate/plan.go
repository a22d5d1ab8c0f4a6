package mutate

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// projectedDefaultMode is what kube-apiserver defaults a projected volume's
// mode to. Setting it ourselves makes the volume we inject equal to the one the
// API server returns, so a pod re-created from its own output is recognised.
const projectedDefaultMode int32 = 0o644

// ContainerRef points at one container of a pod: Init selects
// spec.initContainers, otherwise spec.containers.
type ContainerRef struct {
	Init  bool
	Index int
}

// Mount is one volume mount to add to one container.
type Mount struct {
	Container ContainerRef
	Mount     corev1.VolumeMount
}

// Changes are the additions a Spec makes to a Pod: nothing in it removes or
// replaces anything the pod had, except fields we own (the status annotation)
// or fields whose value we checked is the default we may override
// (serviceAccountName "default"). The admission handler turns Changes into
// add-only JSON Patch operations; Apply makes the same changes to a typed Pod.
type Changes struct {
	// Volume is the projected volume to append, or nil if the pod has it.
	Volume *corev1.Volume
	// Mounts are appended to the named containers' volumeMounts.
	Mounts []Mount
	// Env go before the named containers' own env entries (token-file-env).
	Env []Env
	// ServiceAccountName, when not empty, is set as spec.serviceAccountName.
	ServiceAccountName string
	// DeprecatedServiceAccount, when not empty, is set as spec.serviceAccount.
	DeprecatedServiceAccount string
	// Status, when not empty, is set as the status annotation.
	Status string
	// Expiration, when not empty, is set as the expiration annotation, which
	// the pod has not: only offline injection asks for it
	// (Result.RecordExpiration).
	Expiration string
	// Label, when true, sets the injected label (LabelInjected=InjectedTrue).
	Label bool
}

// Empty reports whether the pod already carries everything the Spec asks for.
func (c *Changes) Empty() bool {
	return c.Volume == nil && len(c.Mounts) == 0 && len(c.Env) == 0 && c.ServiceAccountName == "" &&
		c.DeprecatedServiceAccount == "" && c.Status == "" && c.Expiration == "" && !c.Label
}

// Status is what the status annotation records: what was injected, for audit
// and so that a second pass can tell the pod is already done.
type Status struct {
	Audiences         []string `json:"audiences"`
	ExpirationSeconds int64    `json:"expirationSeconds"`
	ServiceAccount    string   `json:"serviceAccount"`
	// RBAC is true when the account's Role and RoleBinding were ensured.
	RBAC bool `json:"rbac"`
	// ManagedServiceAccount is true when the account is one the webhook
	// created, for audit: nothing the webhook decides reads it back (a pod
	// author can write any status), the reconciler least of all.
	ManagedServiceAccount bool     `json:"managedServiceAccount,omitempty"`
	MountPath             string   `json:"mountPath"`
	Containers            []string `json:"containers"`
	// TokenFileEnv maps each variable set to a token file's path to that
	// file's audience.
	TokenFileEnv map[string]string `json:"tokenFileEnv,omitempty"`
}

// Volume is the projected volume a Spec asks for: one serviceAccountToken
// source per audience.
func (s *Spec) Volume() corev1.Volume {
	sources := make([]corev1.VolumeProjection, len(s.Audiences))
	for i, a := range s.Audiences {
		secs := s.ExpirationSeconds
		sources[i].ServiceAccountToken = &corev1.ServiceAccountTokenProjection{
			Audience: a.Name, ExpirationSeconds: &secs, Path: a.File,
		}
	}
	mode := projectedDefaultMode
	return corev1.Volume{
		Name: VolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: sources, DefaultMode: &mode,
		}},
	}
}

// VolumeMount is the read-only mount of the token volume.
func (s *Spec) VolumeMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: VolumeName, MountPath: s.MountPath, ReadOnly: true}
}

// Identity is what was ensured for the pod's account. pkg/mutate cannot
// know it (it talks to no API): the admission handler learns it from the
// Ensurer and passes it in as data (Result.Restate).
type Identity struct {
	// RBAC: the account's Role and RoleBinding were ensured.
	RBAC bool
	// ManagedAccount: the account is one the webhook created.
	ManagedAccount bool
}

// AssumedIdentity is what Mutate records until told otherwise: an account
// named gets its RBAC in an account the webhook creates; no account, none.
// Of every status a Spec can have, it gives the longest, so that the
// annotation size check holds whatever the Ensurer then reports.
func (s *Spec) AssumedIdentity() Identity {
	return Identity{RBAC: s.ServiceAccount != "", ManagedAccount: s.ServiceAccount != ""}
}

// Status is the status annotation's content for this Spec, given the account
// the pod ends up running as and what was ensured for it.
func (s *Spec) Status(runsAs string, id Identity) string {
	st := Status{
		ExpirationSeconds:     s.ExpirationSeconds,
		ServiceAccount:        runsAs,
		RBAC:                  id.RBAC,
		ManagedServiceAccount: id.ManagedAccount,
		MountPath:             s.MountPath,
		Containers:            s.Containers,
	}
	for _, a := range s.Audiences {
		st.Audiences = append(st.Audiences, a.Name)
	}
	st.TokenFileEnv = s.tokenFileEnvStatus()
	b, _ := json.Marshal(st) // cannot fail: strings, ints, bools and a map of strings only
	return string(b)
}

// Plan works out the Changes that make pod carry spec. It refuses, with an
// *InvalidError, to touch a volume, mount or variable the pod already has
// that differs from ours: those are the author's, and we never overwrite them.
func Plan(spec *Spec, pod *corev1.Pod) (Changes, error) {
	var c Changes
	want := spec.Volume()
	if have := findVolume(pod.Spec.Volumes, VolumeName); have == nil {
		c.Volume = &want
	} else if !equality.Semantic.DeepEqual(*have, want) {
		if secs, ok := lifetimeOnly(have, &want); ok {
			return Changes{}, lifetimeDiffers(spec, secs)
		}
		return Changes{}, invalid("spec.volumes", VolumeName,
			"no volume named %s other than the one this webhook injects; rename or remove the pod's own %s volume", VolumeName, VolumeName)
	}

	mount := spec.VolumeMount()
	refs := containerRefs(pod, spec.Containers)
	for _, ref := range refs {
		ctr := container(pod, ref)
		add, err := planMount(ctr, mount)
		if err != nil {
			return Changes{}, err
		}
		if add {
			c.Mounts = append(c.Mounts, Mount{Container: ref, Mount: mount})
		}
	}
	env, err := planTokenFileEnv(spec, pod, refs)
	if err != nil {
		return Changes{}, err
	}
	c.Env = env

	runsAs := runsAs(spec, pod)
	if spec.FromAnnotation {
		if pod.Spec.ServiceAccountName != runsAs {
			c.ServiceAccountName = runsAs
		}
		if pod.Spec.DeprecatedServiceAccount != runsAs {
			c.DeprecatedServiceAccount = runsAs
		}
	}
	c.Status = statusChange(spec, pod, runsAs, spec.AssumedIdentity())
	c.Label = pod.Labels[LabelInjected] != InjectedTrue
	return c, nil
}

// runsAs is the account the pod ends up running as.
func runsAs(spec *Spec, pod *corev1.Pod) string {
	if spec.FromAnnotation {
		return spec.ServiceAccount
	}
	if sa := podServiceAccount(&pod.Spec); sa != "" {
		return sa
	}
	return DefaultServiceAccount
}

// statusChange is the status annotation to set, or "" if the pod has it.
func statusChange(spec *Spec, pod *corev1.Pod, runsAs string, id Identity) string {
	if st := spec.Status(runsAs, id); pod.Annotations[AnnotationStatus] != st {
		return st
	}
	return ""
}

// lifetimeOnly reports whether have is want but for its tokens' lifetime,
// one for all its tokens as the webhook writes it, and returns that
// lifetime. Such a volume is the webhook's own output under another
// default: a pod injected offline, or re-created from its own YAML once its
// namespace set default-expiration.
func lifetimeOnly(have, want *corev1.Volume) (int64, bool) {
	if have.Projected == nil || len(have.Projected.Sources) == 0 {
		return 0, false
	}
	h := have.DeepCopy()
	first := h.Projected.Sources[0].ServiceAccountToken
	if first == nil || first.ExpirationSeconds == nil {
		return 0, false
	}
	secs := *first.ExpirationSeconds
	for _, src := range h.Projected.Sources {
		t := src.ServiceAccountToken
		if t == nil || t.ExpirationSeconds == nil || *t.ExpirationSeconds != secs {
			return 0, false
		}
		t.ExpirationSeconds = want.Projected.Sources[0].ServiceAccountToken.ExpirationSeconds
	}
	return secs, equality.Semantic.DeepEqual(*h, *want)
}

// lifetimeDiffers is the denial of a pod whose volume is ours but for the
// lifetime, secs: it names both lifetimes, where the pod's came from, and
// the annotation that keeps the volume's.
func lifetimeDiffers(spec *Spec, secs int64) error {
	return invalid(fmt.Sprintf("spec.volumes[%s] expirationSeconds", VolumeName), strconv.FormatInt(secs, 10),
		"%d, the lifetime this pod asks for (%s): the volume is the one this webhook injects but for the lifetime, "+
			"as when a pod was injected offline or is re-created from its own YAML under another default; "+
			"set %s to %s on the pod to keep the volume's lifetime, or remove the volume to have it injected again",
		spec.ExpirationSeconds, spec.ExpirationFrom, AnnotationExpiration, quote(strconv.FormatInt(secs, 10)))
}

func planMount(ctr *corev1.Container, want corev1.VolumeMount) (bool, error) {
	// Only for an error: formatted for every container, it was an
	// allocation per container on every admission.
	field := func() string { return fmt.Sprintf("containers[%s].volumeMounts", ctr.Name) }
	for _, m := range ctr.VolumeMounts {
		switch {
		case m.Name == VolumeName && equality.Semantic.DeepEqual(m, want):
			return false, nil
		case m.Name == VolumeName:
			return false, invalid(field(), m.MountPath,
				"a mount of volume %s exactly as this webhook makes it (read-only at %s), or none", VolumeName, want.MountPath)
		// Compared as the kubelet mounts them: /var/run/secrets/tokens/
		// is the directory our mount (always clean) would cover.
		case path.Clean(m.MountPath) == want.MountPath:
			return false, invalid(field(), m.MountPath,
				"a mount path free for the token volume; volume %s is already mounted there (set %s to another directory)", m.Name, AnnotationMountPath)
		}
	}
	return true, nil
}

// Apply makes the Changes to a typed Pod, exactly as the admission handler's
// JSON Patch makes them to the raw one.
func (c *Changes) Apply(pod *corev1.Pod) {
	if c.Volume != nil {
		pod.Spec.Volumes = append(pod.Spec.Volumes, *c.Volume)
	}
	for _, m := range c.Mounts {
		ctr := container(pod, m.Container)
		ctr.VolumeMounts = append(ctr.VolumeMounts, m.Mount)
	}
	applyEnv(pod, c.Env)
	if c.ServiceAccountName != "" {
		pod.Spec.ServiceAccountName = c.ServiceAccountName
	}
	if c.DeprecatedServiceAccount != "" {
		pod.Spec.DeprecatedServiceAccount = c.DeprecatedServiceAccount
	}
	if c.Status != "" {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[AnnotationStatus] = c.Status
	}
	if c.Expiration != "" {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[AnnotationExpiration] = c.Expiration
	}
	if c.Label {
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[LabelInjected] = InjectedTrue
	}
}

func findVolume(vols []corev1.Volume, name string) *corev1.Volume {
	for i := range vols {
		if vols[i].Name == name {
			return &vols[i]
		}
	}
	return nil
}

// containerRefs resolves container names (as Parse returned them, in pod
// order: init containers first) to positions in the pod.
func containerRefs(pod *corev1.Pod, names []string) []ContainerRef {
	refs := make([]ContainerRef, 0, len(names))
	for _, init := range []bool{true, false} {
		ctrs := pod.Spec.Containers
		if init {
			ctrs = pod.Spec.InitContainers
		}
		for i := range ctrs {
			for _, n := range names {
				if ctrs[i].Name == n {
					refs = append(refs, ContainerRef{Init: init, Index: i})
					break
				}
			}
		}
	}
	return refs
}

func container(pod *corev1.Pod, ref ContainerRef) *corev1.Container {
	if ref.Init {
		return &pod.Spec.InitContainers[ref.Index]
	}
	return &pod.Spec.Containers[ref.Index]
}
