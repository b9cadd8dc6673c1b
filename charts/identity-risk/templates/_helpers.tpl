{{/* The name of every object (and of the operator's own ServiceAccount). */}}
{{- define "identity-risk.fullname" -}}
{{- default "identity-risk-operator" .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "identity-risk.selectorLabels" -}}
app.kubernetes.io/name: identity-risk-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "identity-risk.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{ include "identity-risk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "identity-risk.tlsSecret" -}}
{{- default (printf "%s-tls" (include "identity-risk.fullname" .)) .Values.webhook.tls.secretName -}}
{{- end -}}

{{- define "identity-risk.clientCASecret" -}}
{{- default (include "identity-risk.tlsSecret" .) .Values.webhook.clientCA.secretName -}}
{{- end -}}

{{/* The client CA is a mounted Secret unless the operator generated its own (and the client
certificate the apiserver presents) and no other was named. */}}
{{- define "identity-risk.clientCAMounted" -}}
{{- if or (ne .Values.webhook.tls.mode "generate") .Values.webhook.clientCA.secretName -}}true{{- end -}}
{{- end -}}

{{- define "identity-risk.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "identity-risk.webhookClient" -}}
service:
  name: {{ include "identity-risk.fullname" . }}
  namespace: {{ .Release.Namespace }}
  path: /mutate
  port: 443
{{- if and (ne .Values.webhook.tls.mode "certManager") .Values.webhook.tls.caBundle }}
caBundle: {{ .Values.webhook.tls.caBundle }}
{{- end }}
{{- end -}}
{{- define "identity-risk.notOurs" -}}
# Never kube-system, never the operator's own namespace (it must be able to start itself).
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      - kube-system
      - {{ .Release.Namespace }}
      {{- range .Values.mutatingWebhook.excludeNamespaces }}
      - {{ . }}
      {{- end }}
{{- end -}}
