{{- define "evo.name" -}}emotivoice-operator{{- end -}}

{{- define "evo.fullname" -}}
{{- if contains "emotivoice-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-emotivoice-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "evo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "evo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "evo.labels" -}}
{{ include "evo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: emotivoice
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "evo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "evo.serverImage" -}}
{{- printf "%s:%s" .Values.serverImage.repository (default .Chart.AppVersion .Values.serverImage.tag) -}}
{{- end -}}

{{/* The server image's CPU variant: cpuTag, else the GPU tag with "-cpu". */}}
{{- define "evo.serverCpuImage" -}}
{{- $tag := default .Chart.AppVersion .Values.serverImage.tag -}}
{{- printf "%s:%s" .Values.serverImage.repository (default (printf "%s-cpu" $tag) .Values.serverImage.cpuTag) -}}
{{- end -}}

{{/* The operator's rules: files/operator-rules.yaml, shared with the integration tests. */}}
{{- define "evo.rules" -}}
{{ .Files.Get "files/operator-rules.yaml" }}
{{- if .Values.peering.enabled }}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings, kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}

{{- /* The capacity placeholders' PriorityClass: the value given, else the release's own. */ -}}
{{- define "evo.placeholderPriorityClass" -}}
{{- .Values.placeholderPriorityClass.name | default (printf "%s-placeholder" (include "evo.fullname" .)) -}}
{{- end -}}
