{{- define "idempo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "idempo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "idempo.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "idempo.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "idempo.operator" -}}{{ include "idempo.fullname" . }}-operator{{- end -}}
{{- define "idempo.webhookService" -}}{{ include "idempo.fullname" . }}-webhook{{- end -}}
{{- define "idempo.certSecret" -}}{{ default (printf "%s-webhook-tls" (include "idempo.fullname" .)) .Values.certs.secretName }}{{- end -}}
{{- define "idempo.leaseName" -}}{{ include "idempo.fullname" . }}-operator-leader{{- end -}}

{{- define "idempo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "idempo.operator" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "idempo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "idempo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: idempo
{{- end -}}

{{- define "idempo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "idempo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}
