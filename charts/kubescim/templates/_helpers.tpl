{{- define "kubescim.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubescim.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "kubescim.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kubescim.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubescim.labels" -}}
app.kubernetes.io/name: {{ include "kubescim.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubescim
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubescim.selector" -}}
app.kubernetes.io/name: {{ include "kubescim.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubescim.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- /* Token Secrets the gateway may read: each provider's, plus extras. */ -}}
{{- define "kubescim.tokenSecrets" -}}
{{- $names := list -}}
{{- range .Values.providers -}}
{{- $seed := (.scim | default dict).existingTokenSecret | default dict -}}
{{- $names = append $names (default (printf "%s-scim-token" .name) $seed.name) -}}
{{- end -}}
{{- concat $names .Values.gateway.extraTokenSecrets | uniq | toJson -}}
{{- end -}}

{{- /* Okta credential Secrets the operator may read. */ -}}
{{- define "kubescim.oktaSecrets" -}}
{{- $names := list -}}
{{- range .Values.providers -}}
{{- with .okta -}}
{{- with .auth -}}
{{- with .apiTokenSecretRef }}{{ $names = append $names .name }}{{ end -}}
{{- with .oauth }}{{ with .privateKeySecretRef }}{{ $names = append $names .name }}{{ end }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- concat $names .Values.operator.extraOktaSecrets | uniq | toJson -}}
{{- end -}}

{{- define "kubescim.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kubescim.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The access allow-list as the operator reads it: a JSON list of "<kind>/<name>". */}}
{{- define "kubescim.allowedRoles" -}}
{{- $roles := list -}}
{{- range .Values.access.allowedRoles -}}
{{- if not (has .kind (list "ClusterRole" "Role")) -}}
{{- fail (printf "access.allowedRoles: kind must be ClusterRole or Role, not %q" .kind) -}}
{{- end -}}
{{- $roles = append $roles (printf "%s/%s" .kind .name) -}}
{{- end -}}
{{- toJson $roles -}}
{{- end -}}

{{/* Names of the allowed roles of one kind, as a YAML flow list. */}}
{{- define "kubescim.allowedRoleNames" -}}
{{- $kind := index . 1 -}}
{{- $names := list -}}
{{- range (index . 0).Values.access.allowedRoles -}}
{{- if eq .kind $kind -}}{{- $names = append $names .name -}}{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}
