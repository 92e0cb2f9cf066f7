{{/*
The chart's name, overridable with nameOverride.
*/}}
{{- define "hds.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the release name, prefixed with the chart name unless it contains it.
*/}}
{{- define "hds.fullname" -}}
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

{{/*
The name of the operator's Deployment, Service, ClusterRole, Role and their bindings:
"<fullname>-operator" (so release "hds" gives "hds-operator").
*/}}
{{- define "hds.operatorName" -}}
{{- printf "%s-operator" (include "hds.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hds.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object. The component label keeps the selector off the data-plane pods the
operator creates (those carry app.kubernetes.io/name=hds and their service's component).
*/}}
{{- define "hds.labels" -}}
helm.sh/chart: {{ include "hds.chart" . }}
{{ include "hds.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hds.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hds.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "hds.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hds.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hds.leaseName" -}}
{{- default (include "hds.operatorName" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Image references; the tags default to the chart's appVersion.
*/}}
{{- define "hds.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{- define "hds.hdsImage" -}}
{{- printf "%s:%s" .Values.hdsImage.repository (default .Chart.AppVersion .Values.hdsImage.tag | toString) }}
{{- end }}

{{/*
Values that cannot work together. Included by the Deployment, so any render fails on them.
*/}}
{{- define "hds.validateValues" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: replicas without leader election would all reconcile the same objects; enable leader election or set replicaCount to 1" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled (the ServiceMonitor scrapes the metrics Service)" }}
{{- end }}
{{- end }}
