{{/*
token-projector.name is the chart name, or nameOverride.
*/}}
{{- define "token-projector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
token-projector.fullname prefixes every object name. A release named
token-projector (the documented install) gives "token-projector", the names
config/ uses, so that the chart and the kustomize install create the same
objects.
*/}}
{{- define "token-projector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "token-projector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
token-projector.labels go on every object.
*/}}
{{- define "token-projector.labels" -}}
helm.sh/chart: {{ include "token-projector.chart" . }}
{{ include "token-projector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
token-projector.selectorLabels select the webhook's pods (Deployment, Service,
PodDisruptionBudget, topology spread, NetworkPolicy).
*/}}
{{- define "token-projector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "token-projector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "token-projector.serviceAccountName" -}}
{{ include "token-projector.fullname" . }}
{{- end }}

{{- define "token-projector.serviceName" -}}
{{ include "token-projector.fullname" . }}-webhook
{{- end }}

{{- define "token-projector.certificateName" -}}
{{ include "token-projector.fullname" . }}-serving-cert
{{- end }}

{{/*
token-projector.leaderElectionID names the Lease the replicas elect the
reconciler by: one per release, so that two releases in one namespace do not
take turns over one Lease (the release token-projector gives config/'s
token-projector-reconciler). Not truncated: a Lease's name may be 253 long.

An upgrade keeps the Lease the release's running Deployment elects through,
whatever this chart would name it: during a rollout the old pods keep
electing through their Lease, and new pods electing through another would
lead beside them. Charts before the per-release Lease passed no
--leader-election-id, so their pods elect through the webhook's default,
token-projector-reconciler; a release not named token-projector that
had them keeps that name. helm template (and tools that render with it)
cannot look the Deployment up and render the per-release name.
*/}}
{{- define "token-projector.leaderElectionID" -}}
{{- $id := printf "%s-reconciler" (include "token-projector.fullname" .) }}
{{- $live := lookup "apps/v1" "Deployment" .Release.Namespace (include "token-projector.fullname" .) }}
{{- range $c := dig "spec" "template" "spec" "containers" (list) $live }}
{{- $args := default (list) $c.args }}
{{- if and (eq $c.name "webhook") (has "--leader-elect" $args) }}
{{- $id = "token-projector-reconciler" }}
{{- range $a := $args }}
{{- if hasPrefix "--leader-election-id=" $a }}
{{- $id = trimPrefix "--leader-election-id=" $a }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $id }}
{{- end }}

{{- define "token-projector.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
token-projector.configNamespace is the namespace config/ is written for. The
files the chart reads from config/ (files/) name it where the install
namespace belongs; the chart puts the release namespace there instead.
*/}}
{{- define "token-projector.configNamespace" -}}
token-projector-system
{{- end }}

{{/*
token-projector.rename maps a name from config/ ("token-projector" or
"token-projector-<suffix>") to this release's name.
*/}}
{{- define "token-projector.rename" -}}
{{- $fullname := include "token-projector.fullname" .root }}
{{- if eq .name "token-projector" }}
{{- $fullname }}
{{- else if hasPrefix "token-projector-" .name }}
{{- printf "%s-%s" $fullname (trimPrefix "token-projector-" .name) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- fail (printf "files/: %q does not start with token-projector: the chart cannot name it per release" .name) }}
{{- end }}
{{- end }}

{{/*
token-projector.documents parses a multi-document YAML file of files/ (a copy
of config/ made by `make chart-sync`) into {"items": [...]}, skipping empty
documents.
*/}}
{{- define "token-projector.documents" -}}
{{- $items := list }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" (.root.Files.Get .file) -1 }}
{{- $obj := fromYaml $doc }}
{{- if hasKey $obj "Error" }}
{{- fail (printf "%s: %s" $.file $obj.Error) }}
{{- end }}
{{- if $obj }}
{{- $items = append $items $obj }}
{{- end }}
{{- end }}
{{- if not $items }}
{{- fail (printf "%s is missing or empty: run make chart-sync" .file) }}
{{- end }}
{{- toYaml (dict "items" $items) }}
{{- end }}

{{/*
token-projector.durationMillis converts "500ms" or "3s" to milliseconds
(values.schema.json allows only these forms for ensureTimeout).
*/}}
{{- define "token-projector.durationMillis" -}}
{{- if hasSuffix "ms" . }}
{{- trimSuffix "ms" . | int }}
{{- else }}
{{- mul (trimSuffix "s" . | int) 1000 }}
{{- end }}
{{- end }}

{{/*
token-projector.validate fails the render on combinations the schema cannot
express.
*/}}
{{- define "token-projector.validate" -}}
{{- $ensure := include "token-projector.durationMillis" .Values.ensureTimeout | int }}
{{- $timeout := mul .Values.webhook.timeoutSeconds 1000 }}
{{- if ge $ensure $timeout }}
{{- fail (printf "ensureTimeout (%s) must be below webhook.timeoutSeconds (%ds): it is the deadline of each whole admission (the live namespace read takes at most a third of it, creating the ServiceAccount the rest), so the slowest answer takes ensureTimeout plus decoding; kube-apiserver would give up on the webhook before the webhook can report why it failed" .Values.ensureTimeout (int .Values.webhook.timeoutSeconds)) }}
{{- end }}
{{- if and (eq .Values.rbac.scope "namespaces") (not .Values.rbac.namespaces) }}
{{- fail "rbac.scope is namespaces but rbac.namespaces is empty: list the namespaces the webhook may serve" }}
{{- end }}
{{- if and (eq .Values.rbac.scope "cluster") .Values.rbac.namespaces }}
{{- fail "rbac.namespaces is set but rbac.scope is cluster: set rbac.scope=namespaces to bind the webhook in those namespaces only" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- end }}
