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

{{- define "algorail-pipeline.codeConfigMap" -}}
{{- printf "%s-code" (include "algorail-pipeline.fullname" .) -}}
{{- end -}}

{{/*
True (non-empty) when a runner runs packed code: a python entrypoint, no image of its own,
and modules packed in code.files (algorail.codepack). Takes (dict "root" . "runner" R).
*/}}
{{- define "algorail-pipeline.packed" -}}
{{- $r := .runner -}}
{{- if and (eq $r.runtime "python") $r.entrypoint (empty $r.image) .root.Values.code.files -}}true{{- end -}}
{{- end -}}

{{/*
Labels of one object: the pipeline's metadata.labels and commonLabels, then the Kubernetes
recommended labels (which win) with the object's component, and the pipeline's owner and
deployment. Call with (dict "root" $ "component" "runner").
*/}}
{{- define "algorail-pipeline.labels" -}}
{{- $root := .root -}}
{{- $recommended := dict
  "helm.sh/chart" (include "algorail-pipeline.chart" $root)
  "app.kubernetes.io/name" (include "algorail-pipeline.name" $root)
  "app.kubernetes.io/instance" $root.Release.Name
  "app.kubernetes.io/version" $root.Chart.AppVersion
  "app.kubernetes.io/managed-by" $root.Release.Service
  "app.kubernetes.io/part-of" "algorail"
  "app.kubernetes.io/component" .component
  "algorail.io/owner" ($root.Values.plan.owner | default "")
  "algorail.io/deployment" ($root.Values.plan.deployment | default "") -}}
{{- merge $recommended (deepCopy ($root.Values.commonLabels | default dict)) (deepCopy ($root.Values.plan.labels | default dict)) | toYaml -}}
{{- end -}}

{{/*
Annotations of one object: commonAnnotations and the pipeline's metadata.annotations, under
the object's own (.extra, which win). Empty when there are none.
*/}}
{{- define "algorail-pipeline.annotations" -}}
{{- $root := .root -}}
{{- $annotations := merge (deepCopy (.extra | default dict)) (deepCopy ($root.Values.commonAnnotations | default dict)) (deepCopy ($root.Values.plan.annotations | default dict)) -}}
{{- with $annotations }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* Labels that select this release's pods. */}}
{{- define "algorail-pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "algorail-pipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The runners' ServiceAccount. */}}
{{- define "algorail-pipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-runner" (include "algorail-pipeline.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
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

{{/*
One Emissary Mapping to the gateway: (dict "root" $ "name" NAME "match" {prefix, ...}
"annotations" {...}). The gateway routes on the whole path, so it is kept (Emissary's
default rewrite is "/").
*/}}
{{- define "algorail-pipeline.mapping" -}}
{{- $root := .root -}}
{{- $m := $root.Values.mappings -}}
{{- $service := printf "%s.%s:%d" $m.gatewayService ($m.gatewayNamespace | default $root.Release.Namespace) (int $m.gatewayPort) }}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "algorail-pipeline.labels" (dict "root" $root "component" "route") | nindent 4 }}
  {{- with include "algorail-pipeline.annotations" (dict "root" $root "extra" .annotations) }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
spec:
  hostname: {{ $m.hostname | quote }}
  {{- toYaml .match | nindent 2 }}
  rewrite: ""
  service: {{ $service | quote }}
  timeout_ms: {{ int $m.timeoutMs }}
  {{- with $m.ambassadorId }}
  ambassador_id:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Readiness and liveness probes on GET /healthz from .values.{readiness,liveness}Probe. */}}
{{- define "algorail-pipeline.probes" -}}
{{- range $kind := list "readinessProbe" "livenessProbe" }}
{{- $probe := get $.values $kind }}
{{- if $probe.enabled }}
{{ $kind }}:
  httpGet:
    path: /healthz
    port: {{ $.port }}
  {{- toYaml (omit $probe "enabled") | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The runners' egress: DNS, Kafka, the object store when an endpoint path takes file
references, the port of every algo server the plan names by URL (an http sidecar is in
the pod and needs none), then networkPolicy.egress.extraRules.
*/}}
{{- define "algorail-pipeline.egressRules" -}}
{{- $egress := .Values.networkPolicy.egress -}}
{{- $ports := $egress.kafkaPorts -}}
{{- range .Values.plan.routes }}{{ if eq .message_data_type "fileReference" }}{{ $ports = concat $ports $egress.objectStorePorts }}{{ end }}{{ end -}}
- to:
    {{- toYaml $egress.dns | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
- ports:
    {{- range uniq $ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- $algoPorts := list -}}
{{- range .Values.plan.runners }}
{{- if and .url (not .image) }}
{{- $url := urlParse .url -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- $port := ternary (last $hostPort) (ternary "443" "80" (eq $url.scheme "https")) (gt (len $hostPort) 1) -}}
{{- if not (has (first $hostPort) (list "localhost" "127.0.0.1")) -}}
{{- $algoPorts = append $algoPorts $port -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with uniq $algoPorts }}
- ports:
    {{- range . }}
    - port: {{ int . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- with $egress.extraRules }}
{{ toYaml . }}
{{- end }}
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
{{- range $key, $value := ($plan.labels | default dict) -}}
{{- if not (and (regexMatch "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$" $value) (le (len $value) 63)) -}}
{{- $problems = append $problems (printf "metadata.labels.%s: %q is not a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit); move it to metadata.annotations" $key $value) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "resources" "algoResources" -}}
{{- if not (kindIs "map" (get $.Values.runner $key)) -}}
{{- $problems = append $problems (printf "runner.%s: must be a map of requests and limits (every container needs them); --set runner.%s.limits.memory=512Mi, or leave the default" $key $key) -}}
{{- end -}}
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
