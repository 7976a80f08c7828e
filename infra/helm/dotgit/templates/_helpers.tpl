{{/* Names and labels shared by every manifest. */}}
{{- define "dotgit.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "dotgit.labels" -}}
app.kubernetes.io/name: dotgit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "role" "gateway") */}}
{{- define "dotgit.selector" -}}
app.kubernetes.io/name: dotgit
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "dotgit.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- define "dotgit.sandboxImage" -}}
{{ .Values.image.sandboxRepository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The git storage nodes' base URLs, through the headless Service (one per StatefulSet pod). */}}
{{- define "dotgit.gitUpstreams" -}}
{{- $name := include "dotgit.fullname" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.git.replicas) -}}
{{- $urls = append $urls (printf "http://%s-git-%d.%s-git.%s.svc:%d" $name $i $name $.Release.Namespace (int $.Values.git.port)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/* Where the database URL of database `name` comes from. */}}
{{- define "dotgit.databaseUrlFrom" -}}
{{- $db := .db -}}
{{- if eq .root.Values.postgres.mode "cloudnativepg" -}}
secretKeyRef: { name: {{ printf "%s-pg-%s-app" (include "dotgit.fullname" .root) $db.name }}, key: uri }
{{- else -}}
secretKeyRef: { name: {{ $db.urlSecret.name }}, key: {{ $db.urlSecret.key }} }
{{- end -}}
{{- end -}}

{{/*
Environment every dotgit container gets: config, dependencies, secrets. Each database's URL is
DOTGIT_DB_URL_<INDEX>; DATABASE_URL is the first (the global database), DOTGIT_SHARD_MAP names the
others by variable so no URL (with its password) is ever rendered into a manifest.
*/}}
{{- define "dotgit.env" -}}
- name: DOTGIT_DATA_DIR
  value: /data
- name: DOTGIT_INTERNAL_HOST
  value: 0.0.0.0
- name: DOTGIT_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: REDIS_URL
  value: {{ .Values.redis.url | quote }}
- name: DOTGIT_API_UPSTREAMS
  value: {{ printf "http://%s-api:%d" (include "dotgit.fullname" .) (int .Values.api.port) | quote }}
- name: DOTGIT_GIT_UPSTREAMS
  value: {{ include "dotgit.gitUpstreams" . | quote }}
- name: DOTGIT_OBJECT_STORE
  value: s3
- name: DOTGIT_S3_BUCKET
  value: {{ .Values.objectStore.bucket | quote }}
- name: DOTGIT_S3_REGION
  value: {{ .Values.objectStore.region | quote }}
{{- with .Values.objectStore.endpoint }}
- name: DOTGIT_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.objectStore.prefix }}
- name: DOTGIT_S3_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- with .Values.objectStore.credentialsSecret }}
- name: DOTGIT_S3_ACCESS_KEY_ID
  valueFrom: { secretKeyRef: { name: {{ . }}, key: accessKeyId } }
- name: DOTGIT_S3_SECRET_ACCESS_KEY
  valueFrom: { secretKeyRef: { name: {{ . }}, key: secretAccessKey } }
{{- end }}
- name: DOTGIT_INTERNAL_SECRET
  valueFrom: { secretKeyRef: { name: {{ .Values.platformSecret }}, key: internalSecret } }
- name: DOTGIT_SECRETS_KEY
  valueFrom: { secretKeyRef: { name: {{ .Values.platformSecret }}, key: secretsKey } }
{{- range $i, $db := .Values.postgres.databases }}
- name: {{ printf "DOTGIT_DB_URL_%d" $i }}
  valueFrom:
    {{- include "dotgit.databaseUrlFrom" (dict "root" $ "db" $db) | nindent 4 }}
{{- end }}
- name: DATABASE_URL
  value: "$(DOTGIT_DB_URL_0)"
{{- with .Values.postgres.shardMap }}
- name: DOTGIT_SHARD_MAP
  value: {{ include "dotgit.shardMap" $ | quote }}
{{- end }}
{{- range $k, $v := .Values.extraEnv }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/*
DOTGIT_SHARD_MAP (core/shard-map.ts): the first database is `global` (DATABASE_URL); the others'
URLs are Kubernetes `$(VAR)` references to their secret-fed variables, expanded in the pod.
*/}}
{{- define "dotgit.shardMap" -}}
{{- $dbs := .Values.postgres.databases -}}
{{- $first := (index $dbs 0).name -}}
{{- $databases := dict -}}
{{- range $i, $db := $dbs -}}
{{- if gt $i 0 -}}{{- $_ := set $databases $db.name (printf "$(DOTGIT_DB_URL_%d)" $i) -}}{{- end -}}
{{- end -}}
{{- $shards := list -}}
{{- range $s := .Values.postgres.shardMap -}}
{{- $shards = append $shards (ternary "global" $s (eq $s $first)) -}}
{{- end -}}
{{- if ne (len $shards) 8 -}}{{- fail (printf "postgres.shardMap must place all 8 logical shards, it lists %d" (len $shards)) -}}{{- end -}}
{{- dict "databases" $databases "shards" $shards | toJson -}}
{{- end -}}

{{/* The writable places of a read-only root filesystem. */}}
{{- define "dotgit.scratchMounts" -}}
- { name: tmp, mountPath: /tmp }
{{- end -}}
{{- define "dotgit.scratchVolumes" -}}
- name: tmp
  emptyDir: { sizeLimit: 1Gi }
{{- end -}}

{{- define "dotgit.podSecurity" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
