package mutate

import "time"

// The names below are the public contract of DESIGN.md: change them only with
// a migration note in the changelog.
const (
	// Prefix is the domain of every label and annotation we read or write.
	Prefix = "token-projector.io/"

	// LabelInject opts a namespace in ("enabled") or a pod out ("disabled").
	LabelInject = Prefix + "inject"
	// InjectEnabled is the namespace label value that opts a namespace in.
	InjectEnabled = "enabled"
	// InjectDisabled is the pod label value that opts one pod out.
	InjectDisabled = "disabled"

	// AnnotationAudience triggers injection: comma-separated token audiences.
	AnnotationAudience = Prefix + "audience"
	// AnnotationExpiration is the token lifetime: whole seconds or a Go duration.
	AnnotationExpiration = Prefix + "expiration"
	// AnnotationServiceAccount names the ServiceAccount to run as and to ensure.
	AnnotationServiceAccount = Prefix + "service-account"
	// AnnotationMountPath is the directory of the token files.
	AnnotationMountPath = Prefix + "mount-path"
	// AnnotationContainers is an allow-list of container names to mount into.
	AnnotationContainers = Prefix + "containers"
	// AnnotationTokenFileEnv maps audiences to environment variables that
	// name their token files: comma-separated <audience>=<VARIABLE> entries.
	AnnotationTokenFileEnv = Prefix + "token-file-env"
	// AnnotationStatus is written by the webhook: what it injected.
	AnnotationStatus = Prefix + "status"
	// LabelInjected is written by the webhook, InjectedTrue on every pod it
	// injects: the webhook's pod cache selects on it, so that its memory
	// follows the pods it manages, not the cluster's.
	LabelInjected = Prefix + "injected"
	// InjectedTrue is LabelInjected's value.
	InjectedTrue = "true"

	// AnnotationAllowedAudiences, on a Namespace, narrows --allowed-audiences
	// for its pods: comma-separated path.Match globs an audience must match
	// as well.
	AnnotationAllowedAudiences = Prefix + "allowed-audiences"
	// AnnotationMaxExpiration, on a Namespace, lowers --max-expiration for
	// its pods (never raises it): whole seconds or a Go duration.
	AnnotationMaxExpiration = Prefix + "max-expiration"
	// AnnotationDefaultExpiration, on a Namespace, is the token lifetime of
	// its pods that set none: whole seconds or a Go duration.
	AnnotationDefaultExpiration = Prefix + "default-expiration"
	// AnnotationAllowedServiceAccounts, on a Namespace, bounds the accounts
	// the webhook may create and manage (grant token RBAC to) there:
	// comma-separated path.Match globs an account's name must match. Pods
	// naming another account are denied.
	AnnotationAllowedServiceAccounts = Prefix + "allowed-service-accounts"

	// VolumeName is the fixed name of the projected volume; with the status
	// annotation it is what makes the mutation idempotent.
	VolumeName = "token-projector"
	// DefaultMountPath is where the token files go unless the pod says otherwise.
	DefaultMountPath = "/var/run/secrets/tokens"
	// DefaultServiceAccount is the name kube-apiserver gives pods that name none.
	DefaultServiceAccount = "default"
	// TokenFileSuffix ends every token file name: <audience>-token.
	TokenFileSuffix = "-token"
	// RBACNameSuffix ends the Role and RoleBinding names: <sa>-create-token.
	RBACNameSuffix = "-create-token"

	// MinExpiration is kube-apiserver's own lower bound for projected tokens.
	MinExpiration = 10 * time.Minute
	// DefaultExpiration applies when the pod gives no expiration.
	DefaultExpiration = time.Hour
	// DefaultMaxExpiration is the default upper bound (--max-expiration).
	DefaultMaxExpiration = 24 * time.Hour
)

// TemplateAnnotations and TemplateLabels are every key of a pod template
// that can change what the webhook decides about it: the annotations Parse
// reads and the pod opt-out label. A workload UPDATE that changes none of
// them (nor the template's serviceAccountName or serviceAccount) asks for
// nothing new. Its other token-projector.io/ keys are not among them: the
// status annotation and the injected label are the webhook's own output on
// pods, the policy annotations are read from Namespaces. SameRequest and the
// workloads webhook's matchConditions (config/webhook/manifests.yaml, whose
// keys pkg/admission's tests hold to these) compare exactly these keys, each
// by one lookup, so that the cost of the expression does not grow with a
// template's size.
var (
	TemplateAnnotations = []string{
		AnnotationAudience, AnnotationExpiration, AnnotationServiceAccount, AnnotationMountPath, AnnotationContainers,
		AnnotationTokenFileEnv,
	}
	TemplateLabels = []string{LabelInject}
)

// NamespacePolicyAnnotations are the annotations of a Namespace that
// Config.ForNamespace reads: its admins' policy. The webhook's namespace
// cache keeps these and no other annotation.
var NamespacePolicyAnnotations = []string{
	AnnotationAllowedAudiences, AnnotationMaxExpiration, AnnotationDefaultExpiration, AnnotationAllowedServiceAccounts,
}

// Limits that keep one pod's annotations from producing objects or files that
// kube-apiserver or the kubelet would reject later, far from the cause.
const (
	// MaxAudiences bounds the number of token files per pod.
	MaxAudiences = 16
	// MaxAudienceLength keeps "<audience>-token" a valid file name (255 bytes).
	MaxAudienceLength = 255 - len(TokenFileSuffix)
	// MaxServiceAccountName keeps "<sa>-create-token" a valid object name (253).
	MaxServiceAccountName = 253 - len(RBACNameSuffix)
	// MaxMountPathLength is generous for a directory and bounds what we echo back.
	MaxMountPathLength = 1024
)
