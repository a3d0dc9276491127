{{/* Named templates of the phash-fleet chart; every one is prefixed "phash-fleet.". */}}

{{/* The chart name, or nameOverride. */}}
{{- define "phash-fleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object's name: fullnameOverride, or "<release>-<chart>" (just the release name when it already holds the chart name). Kept to 40 characters so suffixes fit in 63. */}}
{{- define "phash-fleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A name for cluster-scoped objects: the namespace is part of it, so two releases of one name never clash. */}}
{{- define "phash-fleet.clusterScopedName" -}}
{{- printf "%s-%s" .Release.Namespace (include "phash-fleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The chart label value: name-version. */}}
{{- define "phash-fleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "phash-fleet.labels" -}}
helm.sh/chart: {{ include "phash-fleet.chart" . }}
{{ include "phash-fleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: phash-fleet
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The labels that select this release's objects. */}}
{{- define "phash-fleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "phash-fleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component; call with (dict "ctx" $ "component" "worker"). */}}
{{- define "phash-fleet.componentLabels" -}}
{{ include "phash-fleet.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "worker"). */}}
{{- define "phash-fleet.componentSelectorLabels" -}}
{{ include "phash-fleet.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Object names of the components. */}}
{{- define "phash-fleet.operator.fullname" -}}
{{- printf "%s-operator" (include "phash-fleet.fullname" .) }}
{{- end }}
{{- define "phash-fleet.worker.fullname" -}}
{{- printf "%s-worker" (include "phash-fleet.fullname" .) }}
{{- end }}
{{- define "phash-fleet.redis.fullname" -}}
{{- printf "%s-redis" (include "phash-fleet.fullname" .) }}
{{- end }}

{{/* ServiceAccount names (a created one, or the one named in values). */}}
{{- define "phash-fleet.operator.serviceAccountName" -}}
{{- default (include "phash-fleet.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- end }}
{{- define "phash-fleet.worker.serviceAccountName" -}}
{{- default (include "phash-fleet.worker.fullname" .) .Values.worker.serviceAccount.name }}
{{- end }}
{{- define "phash-fleet.redis.serviceAccountName" -}}
{{- default (include "phash-fleet.redis.fullname" .) .Values.redis.serviceAccount.name }}
{{- end }}

{{/* An image reference from an image block; call with (dict "image" .Values.worker.image "ctx" $). The digest wins over the tag; the tag defaults to appVersion. */}}
{{- define "phash-fleet.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The namespace whose PhashJobs the operator watches; empty when cluster-wide. */}}
{{- define "phash-fleet.watchNamespace" -}}
{{- if not .Values.operator.clusterWide }}
{{- default .Release.Namespace .Values.operator.watchNamespace }}
{{- end }}
{{- end }}

{{/* The name of this release's kopf peering object (a KopfPeering, or a ClusterKopfPeering when cluster-wide). */}}
{{- define "phash-fleet.peeringName" -}}
{{- if .Values.operator.clusterWide }}
{{- include "phash-fleet.clusterScopedName" . }}
{{- else }}
{{- include "phash-fleet.fullname" . }}
{{- end }}
{{- end }}

{{/* The Redis URL given to the operator and the workers (no password in it). */}}
{{- define "phash-fleet.redis.url" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s.%s.svc:%d/0" (include "phash-fleet.redis.fullname" .) .Release.Namespace (int .Values.redis.port) }}
{{- else }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/* The Secret holding the Redis password: redis.existingSecret, or the one the chart generates. */}}
{{- define "phash-fleet.redis.secretName" -}}
{{- default (include "phash-fleet.redis.fullname" .) .Values.redis.existingSecret }}
{{- end }}

{{/* The key of the password in that Secret. */}}
{{- define "phash-fleet.redis.secretKey" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecretPasswordKey }}
{{- else -}}
redis-password
{{- end }}
{{- end }}

{{/* Log level and format of the operator and the workers (phashfleet/logs.py reads them). */}}
{{- define "phash-fleet.logging.env" -}}
- name: PHASHFLEET_LOG_LEVEL
  value: {{ .Values.logging.level | quote }}
- name: PHASHFLEET_LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
{{- end }}

{{/* The environment every Redis client of the chart gets: URL and password from the Secret. */}}
{{- define "phash-fleet.redis.env" -}}
- name: PHASHFLEET_REDIS_URL
  value: {{ include "phash-fleet.redis.url" . | quote }}
- name: PHASHFLEET_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "phash-fleet.redis.secretName" . }}
      key: {{ include "phash-fleet.redis.secretKey" . }}
{{- end }}

{{/* S3 credentials and endpoint for s3:// sources and outputs. */}}
{{- define "phash-fleet.s3.env" -}}
{{- with .Values.source.s3 }}
{{- if .endpointUrl }}
- name: AWS_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
{{- end }}
{{- if .region }}
- name: AWS_DEFAULT_REGION
  value: {{ .region | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* envFrom of the S3 credentials Secret, when one is named. */}}
{{- define "phash-fleet.s3.envFrom" -}}
{{- if .Values.source.s3.existingSecret }}
envFrom:
  - secretRef:
      name: {{ .Values.source.s3.existingSecret }}
{{- end }}
{{- end }}

{{/* The allowed source roots, joined with ":" (os.pathsep): source.allowedRoots or the volumes' mountPaths. */}}
{{- define "phash-fleet.source.allowedRoots" -}}
{{- $roots := .Values.source.allowedRoots }}
{{- if not $roots }}
{{- $roots = list }}
{{- range .Values.source.volumes }}
{{- $roots = append $roots .mountPath }}
{{- end }}
{{- end }}
{{- join ":" $roots }}
{{- end }}

{{/* The allowed output roots, joined with ":": output.allowedRoots or the output volumes' mountPaths. */}}
{{- define "phash-fleet.output.allowedRoots" -}}
{{- $roots := .Values.output.allowedRoots }}
{{- if not $roots }}
{{- $roots = list }}
{{- range .Values.output.volumes }}
{{- $roots = append $roots .mountPath }}
{{- end }}
{{- end }}
{{- join ":" $roots }}
{{- end }}

{{/* Where workers keep the parts: resultStore.uri, or the mount path of its claim. */}}
{{- define "phash-fleet.resultStore.uri" -}}
{{- default "/var/lib/phashfleet/results" .Values.resultStore.uri }}
{{- end }}

{{/* The claim of the result store (empty when resultStore.uri names an object store). */}}
{{- define "phash-fleet.resultStore.claim" -}}
{{- if not .Values.resultStore.uri }}
{{- default (printf "%s-results" (include "phash-fleet.fullname" .)) .Values.resultStore.existingClaim }}
{{- end }}
{{- end }}

{{/* Pod volumes for a list of data volumes; call with (dict "volumes" LIST "prefix" "source" "readOnly" true). */}}
{{- define "phash-fleet.dataVolumes" -}}
{{- range .volumes }}
- name: {{ printf "%s-%s" $.prefix .name }}
  {{- if .existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .existingClaim }}
    readOnly: {{ $.readOnly }}
  {{- else if .nfs }}
  nfs:
    server: {{ .nfs.server }}
    path: {{ .nfs.path }}
    readOnly: {{ $.readOnly }}
  {{- else if .hostPath }}
  hostPath:
    path: {{ .hostPath.path }}
    type: {{ default "Directory" .hostPath.type }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Container mounts for a list of data volumes; same arguments as phash-fleet.dataVolumes. */}}
{{- define "phash-fleet.dataVolumeMounts" -}}
{{- range .volumes }}
- name: {{ printf "%s-%s" $.prefix .name }}
  mountPath: {{ .mountPath }}
  readOnly: {{ $.readOnly }}
  {{- with .subPath }}
  subPath: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Pod-level security context shared by every pod. */}}
{{- define "phash-fleet.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* Container-level security context shared by every container. */}}
{{- define "phash-fleet.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* The Prometheus `job` label of the operator's and the workers' scrape targets (the alerts select on them). */}}
{{- define "phash-fleet.operator.metricsJob" -}}
{{- include "phash-fleet.operator.fullname" . }}
{{- end }}
{{- define "phash-fleet.worker.metricsJob" -}}
{{- include "phash-fleet.worker.fullname" . }}
{{- end }}

{{/* True when prometheus-operator's API (monitoring.coreos.com/v1) serves the given kind. */}}
{{- define "phash-fleet.hasMonitoringApi" -}}
{{- if .ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) }}true{{ end }}
{{- end }}

{{/* True when KEDA's API (keda.sh/v1alpha1) is installed. */}}
{{- define "phash-fleet.hasKedaApi" -}}
{{- if .Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject" }}true{{ end }}
{{- end }}

{{/* Stop the render with a message naming the value and the fix when values contradict each other. */}}
{{- define "phash-fleet.validateValues" -}}
{{- $errors := list }}
{{- if .Values.redis.enabled }}
{{- if .Values.redis.url }}
{{- $errors = append $errors "redis.url is only for an external Redis: set redis.enabled=false to use it, or leave redis.url empty for the bundled Redis" }}
{{- end }}
{{- else }}
{{- if not .Values.redis.url }}
{{- $errors = append $errors "redis.url is required when redis.enabled=false (e.g. redis://redis.example:6379/0)" }}
{{- end }}
{{- if not .Values.redis.existingSecret }}
{{- $errors = append $errors "redis.existingSecret is required when redis.enabled=false: the fleet never talks to a Redis without a password" }}
{{- end }}
{{- end }}
{{- if and .Values.redis.url (regexMatch "^rediss?://[^/]*@" .Values.redis.url) }}
{{- $errors = append $errors "redis.url must not hold credentials: put the password in the Secret named by redis.existingSecret" }}
{{- end }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- $errors = append $errors (printf "autoscaling.minReplicas (%d) is larger than autoscaling.maxReplicas (%d)" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and (eq .Values.autoscaling.mode "keda") (not (include "phash-fleet.hasKedaApi" .)) }}
{{- $errors = append $errors "autoscaling.mode=keda needs KEDA installed (API keda.sh/v1alpha1 not found): install KEDA first, or use autoscaling.mode=operator" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled }}
{{- $errors = append $errors "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled are both true: choose one, or every target is scraped twice" }}
{{- end }}
{{- if and .Values.operator.clusterWide .Values.operator.watchNamespace }}
{{- $errors = append $errors "operator.watchNamespace is set but operator.clusterWide=true watches every namespace: unset one of them" }}
{{- end }}
{{- range $key, $vols := dict "source.volumes" .Values.source.volumes "output.volumes" .Values.output.volumes }}
{{- range $vols }}
{{- $kinds := 0 }}
{{- if .existingClaim }}{{ $kinds = add1 $kinds }}{{ end }}
{{- if .nfs }}{{ $kinds = add1 $kinds }}{{ end }}
{{- if .hostPath }}{{ $kinds = add1 $kinds }}{{ end }}
{{- if ne (int $kinds) 1 }}
{{- $errors = append $errors (printf "%s[name=%s] needs exactly one of existingClaim, nfs or hostPath" $key .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $errors }}
{{- fail (printf "\n\nVALUES VALIDATION:\n- %s\n" (join "\n- " $errors)) }}
{{- end }}
{{- end }}
