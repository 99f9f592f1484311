{{/*
Names and labels. Every name is cut to 63 characters (the DNS label limit of Services and labels).
*/}}

{{/* Chart name, or nameOverride. */}}
{{- define "realtime-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `<release>-<chart>` (the release name alone when it already holds the chart name), or fullnameOverride. */}}
{{- define "realtime-gateway.fullname" -}}
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

{{/* `<fullname>-<suffix>` within `max` characters (default 63): the fullname is cut, the suffix kept.
Call with (dict "root" $ "suffix" "gateway") or (dict "root" $ "suffix" "redis" "max" 52). */}}
{{- define "realtime-gateway.componentName" -}}
{{- $max := int (default 63 (get . "max")) }}
{{- $keep := sub $max (add1 (len .suffix)) | int }}
{{- printf "%s-%s" (include "realtime-gateway.fullname" .root | trunc $keep | trimSuffix "-") .suffix }}
{{- end }}

{{/* `<chart>-<version>` for the helm.sh/chart label. */}}
{{- define "realtime-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select this release's pods (never change them across upgrades: selectors are immutable). */}}
{{- define "realtime-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "realtime-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "realtime-gateway.labels" -}}
helm.sh/chart: {{ include "realtime-gateway.chart" . }}
{{ include "realtime-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | replace "+" "_" | replace ":" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: realtime-gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component's objects: (dict "root" $ "component" "gateway"). */}}
{{- define "realtime-gateway.componentLabels" -}}
{{ include "realtime-gateway.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector of one component's pods: (dict "root" $ "component" "gateway"). */}}
{{- define "realtime-gateway.componentSelectorLabels" -}}
{{ include "realtime-gateway.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* ServiceAccount of the gateway and worker pods. */}}
{{- define "realtime-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "realtime-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference of the gateway and worker. */}}
{{- define "realtime-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the chart-made Secret (inline values only: external Redis URL, dev-only JWT secret and API keys). */}}
{{- define "realtime-gateway.envSecretName" -}}
{{- include "realtime-gateway.componentName" (dict "root" . "suffix" "env") }}
{{- end }}

{{/* Host name of the bundled Redis Service. */}}
{{- define "realtime-gateway.redisName" -}}
{{- include "realtime-gateway.componentName" (dict "root" . "suffix" "redis") }}
{{- end }}

{{/* Number of pods a component may reach: (dict "values" .Values.gateway). */}}
{{- define "realtime-gateway.maxPods" -}}
{{- if .values.autoscaling.enabled }}{{ int .values.autoscaling.maxReplicas }}{{ else }}{{ int .values.replicas }}{{ end }}
{{- end }}

{{/* Seconds of SHUTDOWN_DELAY_MS + DRAIN_TIMEOUT_MS, rounded up. */}}
{{- define "realtime-gateway.shutdownSeconds" -}}
{{- $ms := add (int64 .Values.config.shutdownDelayMs) (int64 .Values.config.drainTimeoutMs) }}
{{- div (add $ms 999) 1000 }}
{{- end }}

{{/* terminationGracePeriodSeconds of a component, computed or checked: (dict "root" $ "component" "gateway").
It must exceed preStop sleep + SHUTDOWN_DELAY_MS + DRAIN_TIMEOUT_MS, or the kubelet kills the pod mid-drain. */}}
{{- define "realtime-gateway.terminationGracePeriodSeconds" -}}
{{- $v := index .root.Values .component }}
{{- $preStop := 0 }}
{{- if eq .component "gateway" }}{{ $preStop = int $v.preStopSleepSeconds }}{{ end }}
{{- $min := add $preStop (include "realtime-gateway.shutdownSeconds" .root | int) }}
{{- if kindIs "invalid" $v.terminationGracePeriodSeconds }}
{{- add $min 10 }}
{{- else if le (int $v.terminationGracePeriodSeconds) (int $min) }}
{{- fail (printf "%s.terminationGracePeriodSeconds=%d must be larger than %d (preStop sleep %ds + SHUTDOWN_DELAY_MS %dms + DRAIN_TIMEOUT_MS %dms, rounded up): raise it or leave it null to compute it" .component (int $v.terminationGracePeriodSeconds) (int $min) $preStop (int64 .root.Values.config.shutdownDelayMs) (int64 .root.Values.config.drainTimeoutMs)) }}
{{- else }}
{{- int $v.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* An environment value as a string: lists are comma-separated, numbers printed as integers. */}}
{{- define "realtime-gateway.envValue" -}}
{{- if kindIs "slice" . }}{{ join "," . }}
{{- else if kindIs "bool" . }}{{ ternary "true" "false" . }}
{{- else if and (kindIs "float64" .) (ne (float64 .) (float64 (int64 .))) }}{{ . }}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) }}{{ int64 . }}
{{- else }}{{ . }}
{{- end }}
{{- end }}

{{/* Whether a value is unset (null, "" or an empty list): the service then uses its own default. */}}
{{- define "realtime-gateway.isUnset" -}}
{{- if or (kindIs "invalid" .) (and (kindIs "string" .) (eq . "")) (and (kindIs "slice" .) (eq (len .) 0)) }}true{{ end }}
{{- end }}
