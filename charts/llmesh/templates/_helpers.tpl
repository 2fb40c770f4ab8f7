{{/* The prefix of every object's name. */}}
{{- define "llmesh.fullname" -}}
{{- default "llmesh" .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The operator's Deployment, Service and ServiceAccount name. */}}
{{- define "llmesh.operator" -}}
{{- printf "%s-operator" (include "llmesh.fullname" .) -}}
{{- end -}}

{{- define "llmesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llmesh.operator" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llmesh.webhookName" -}}
{{- printf "%s-sidecar-injector" (include "llmesh.fullname" .) -}}
{{- end -}}

{{- define "llmesh.certSecret" -}}
{{- printf "%s-tls" (include "llmesh.operator" .) -}}
{{- end -}}

{{- define "llmesh.caConfigMap" -}}
{{- printf "%s-ca" (include "llmesh.fullname" .) -}}
{{- end -}}

{{- define "llmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: llmesh
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "llmesh.selectorLabels" . }}
{{- end -}}

{{- define "llmesh.selectorLabels" -}}
app.kubernetes.io/name: llmesh-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llmesh.operatorImage" -}}
{{- printf "%s:%s" .Values.image.operator.repository (default .Chart.AppVersion .Values.image.operator.tag) -}}
{{- end -}}

{{- define "llmesh.sidecarImage" -}}
{{- printf "%s:%s" .Values.image.sidecar.repository (default .Chart.AppVersion .Values.image.sidecar.tag) -}}
{{- end -}}

{{/* Argo CD sync waves: CRDs -2 (crds/), RBAC -1, the operator 0, the webhook 1. */}}
{{- define "llmesh.wave" -}}
argocd.argoproj.io/sync-wave: {{ . | quote }}
{{- end -}}

{{/* Whether the operator manages its certificates itself. */}}
{{- define "llmesh.selfCerts" -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certs.mode "self") -}}true{{- end -}}
{{- end -}}
