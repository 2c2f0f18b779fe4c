{{/*
datamesh.name: the chart's short name ("datamesh", or .Values.nameOverride).
Used for the app.kubernetes.io/name label, which stays the same across
releases so dashboards and selectors can find every datamesh install.
Truncated to 63 characters: label values and DNS names allow no more.
*/}}
{{- define "datamesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
datamesh.fullname: the prefix of every object this release creates
("<release>-datamesh", or just "<release>" when the release name already
contains the chart name, or .Values.fullnameOverride). It makes names unique
per release, which matters for the cluster-scoped ClusterRole/Binding.
*/}}
{{- define "datamesh.fullname" -}}
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
datamesh.chart: "<chart>-<version>" for the helm.sh/chart label, so one can
tell which chart version last wrote an object.
*/}}
{{- define "datamesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
datamesh.selectorLabels: the labels the Deployment selects its pods by and
the Service routes to. Never change them in an upgrade: a Deployment's
selector is immutable.
*/}}
{{- define "datamesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "datamesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
datamesh.labels: the standard labels on every object of the release.
*/}}
{{- define "datamesh.labels" -}}
helm.sh/chart: {{ include "datamesh.chart" . }}
{{ include "datamesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: datamesh
{{- end }}

{{/*
datamesh.serviceAccountName: the ServiceAccount the operator runs as — the
one the chart creates (named like the release unless serviceAccount.name is
set) or, with serviceAccount.create=false, an existing one that must be
named. The RBAC bindings use the same helper, so they always bind the
identity the pods run as.
*/}}
{{- define "datamesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "datamesh.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
datamesh.leaseName: the leader-election Lease; the Role grants get/patch on
this name only.
*/}}
{{- define "datamesh.leaseName" -}}
{{- default (include "datamesh.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
datamesh.image: repository@digest when a digest is given, else
repository:tag (tag defaults to the chart's appVersion).
*/}}
{{- define "datamesh.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
datamesh.auditClaimName: the PersistentVolumeClaim holding the SQLite audit
file (an existing one, or the one the chart creates).
*/}}
{{- define "datamesh.auditClaimName" -}}
{{- default (printf "%s-audit" (include "datamesh.fullname" .)) .Values.audit.sqlite.persistence.existingClaim }}
{{- end }}

{{/*
datamesh.auditSqlite: true when the audit store is the SQLite file (no
database URL Secret given).
*/}}
{{- define "datamesh.auditSqlite" -}}
{{- if not .Values.audit.databaseUrlSecret.name }}true{{ end }}
{{- end }}
