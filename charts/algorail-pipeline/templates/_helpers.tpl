{{/*
Named helpers for the algorail-pipeline chart. Every name, topic and route comes from
.Values.plan (the compiled plan); these helpers only make Kubernetes-legal names of them.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "algorail-pipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release-scoped prefix of every object: fullnameOverride, else the release name. */}}
{{- define "algorail-pipeline.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 53 | trimSuffix "-" -}}
{{- end -}}

{{/* chart-version label value. */}}
{{- define "algorail-pipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
A DNS-1123 label from any plan name: lower case, other characters become "-"; when that
changed the name, a short hash of the original keeps two names that differ only in case apart.
*/}}
{{- define "algorail-pipeline.dnsName" -}}
{{- $clean := regexReplaceAll "[^a-z0-9-]+" (lower .) "-" | trimAll "-" -}}
{{- if eq $clean . -}}
{{- $clean | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" ($clean | trunc 54 | trimSuffix "-") (sha256sum . | trunc 8) -}}
{{- end -}}
{{- end -}}

{{/*
The object name for one plan component: "<fullname>-<component>"; past 63 characters it is
cut and a hash of the whole keeps it unique.
*/}}
{{- define "algorail-pipeline.componentName" -}}
{{- $full := printf "%s-%s" (include "algorail-pipeline.fullname" .root) (include "algorail-pipeline.dnsName" .name) -}}
{{- if le (len $full) 63 -}}
{{- $full -}}
{{- else -}}
{{- printf "%s-%s" ($full | trunc 54 | trimSuffix "-") (sha256sum $full | trunc 8) -}}
{{- end -}}
{{- end -}}

{{/* A KafkaTopic object name (a DNS-1123 subdomain; dots allowed) for a plan topic name. */}}
{{- define "algorail-pipeline.topicObjectName" -}}
{{- $clean := regexReplaceAll "[^a-z0-9.-]+" (lower .) "-" | trimAll "-." -}}
{{- if and (eq $clean .) (le (len $clean) 200) -}}
{{- $clean -}}
{{- else -}}
{{- printf "%s-%s" ($clean | trunc 200 | trimSuffix "-" | trimSuffix ".") (sha256sum . | trunc 8) -}}
{{- end -}}
{{- end -}}

{{/* The plan ConfigMap's name; the algorail chart's plan.configMap refers to it. */}}
{{- define "algorail-pipeline.planConfigMap" -}}
{{- printf "%s-plan" (include "algorail-pipeline.fullname" .) -}}
{{- end -}}

{{/* Kubernetes recommended labels plus the pipeline's owner and deployment. */}}
{{- define "algorail-pipeline.labels" -}}
helm.sh/chart: {{ include "algorail-pipeline.chart" . }}
{{ include "algorail-pipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: algorail
algorail.io/owner: {{ .Values.plan.owner | quote }}
algorail.io/deployment: {{ .Values.plan.deployment | quote }}
{{- end -}}

{{/* Labels that select this release's pods. */}}
{{- define "algorail-pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "algorail-pipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The algorail image, pinned by tag (and digest when given). */}}
{{- define "algorail-pipeline.image" -}}
{{- $img := .Values.image -}}
{{- $repo := ternary $img.repository (printf "%s/%s" $img.registry $img.repository) (empty $img.registry) -}}
{{- if $img.digest -}}
{{- printf "%s:%s@%s" $repo $img.tag $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $img.tag -}}
{{- end -}}
{{- end -}}

{{/* What every runner reads from its environment: the broker, and where to serve /metrics. */}}
{{- define "algorail-pipeline.runnerEnv" -}}
- name: ALGORAIL_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: ALGORAIL_METRICS_PORT
  value: {{ .Values.runner.metricsPort | quote }}
- name: ALGORAIL_METRICS_HOST
  value: "0.0.0.0"
{{- end -}}

{{/*
Gathers every bad combination of values into one failure message, each line naming the
value and the --set that fixes it.
*/}}
{{- define "algorail-pipeline.validateValues" -}}
{{- $problems := list -}}
{{- $plan := .Values.plan -}}
{{- if not $plan.owner -}}
{{- $problems = append $problems "plan: empty; render with `algorail render PIPELINE.yaml -o out/`, or pass the compiled plan with `--set-file plan=plan.json` (from `algorail plan PIPELINE.yaml -o plan.json`)" -}}
{{- else if ne $plan.api_version "algorail.io/plan/v1" -}}
{{- $problems = append $problems (printf "plan.api_version: %v is not algorail.io/plan/v1; recompile the plan with this algorail version (`algorail plan PIPELINE.yaml -o plan.json`)" $plan.api_version) -}}
{{- end -}}
{{- range $plan.connectors -}}
{{- if and $.Values.connect.enabled (not (hasKey $.Values.connectorConfigs .name)) -}}
{{- $problems = append $problems (printf "connectorConfigs.%s: missing; `algorail render` fills it in from the connector plugin, or disable Kafka Connect with --set connect.enabled=false" .name) -}}
{{- end -}}
{{- end -}}
{{- if not .Values.kafka.bootstrapServers -}}
{{- $problems = append $problems "kafka.bootstrapServers: empty; --set kafka.bootstrapServers=HOST:PORT" -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "\n\nalgorail-pipeline: invalid values:\n  - %s\n" (join "\n  - " $problems)) -}}
{{- end -}}
{{- end -}}

{{/*
An algo's environment: a ${secrets:NAMESPACE/SECRET:KEY} value becomes a secretKeyRef, never
a literal (a pod reads Secrets of its own namespace only); other values are literals.
Call with (dict "root" $ "runner" $runner).
*/}}
{{- define "algorail-pipeline.algoEnv" -}}
{{- $namespace := .root.Release.Namespace -}}
{{- $component := .runner.component -}}
{{- range $key, $value := .runner.env }}
- name: {{ $key | quote }}
{{- if regexMatch "^\\$\\{secrets:[^/:}]+/[^/:}]+:[^}]+\\}$" $value }}
{{- $ref := splitList ":" ($value | trimPrefix "${secrets:" | trimSuffix "}") }}
{{- $secret := splitList "/" (first $ref) }}
{{- if ne (first $secret) $namespace }}
{{- fail (printf "\n\nalgorail-pipeline: invalid values:\n  - algo %s env.%s: Secret %s is in namespace %s, but this release's pods run in %s and read Secrets of their own namespace only; create the Secret in %s and write ${secrets:%s/%s:%s}\n" $component $key (last $secret) (first $secret) $namespace $namespace $namespace (last $secret) (last $ref)) }}
{{- end }}
  valueFrom:
    secretKeyRef:
      name: {{ last $secret | quote }}
      key: {{ last $ref | quote }}
{{- else }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end -}}
