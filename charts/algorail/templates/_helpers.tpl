{{/*
Named helpers for the algorail chart (gateway and hook dispatcher).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "algorail.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>" when it already names the chart, else "<release>-<chart>"; or fullnameOverride. */}}
{{- define "algorail.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "algorail.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* chart-version label value. */}}
{{- define "algorail.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of one object: commonLabels, then the Kubernetes recommended labels (which win) with
the object's component. Call with (dict "root" $ "component" "gateway").
*/}}
{{- define "algorail.labels" -}}
{{- $root := .root -}}
{{- $recommended := dict
  "helm.sh/chart" (include "algorail.chart" $root)
  "app.kubernetes.io/name" (include "algorail.name" $root)
  "app.kubernetes.io/instance" $root.Release.Name
  "app.kubernetes.io/version" $root.Chart.AppVersion
  "app.kubernetes.io/managed-by" $root.Release.Service
  "app.kubernetes.io/part-of" "algorail"
  "app.kubernetes.io/component" .component -}}
{{- merge $recommended (deepCopy ($root.Values.commonLabels | default dict)) | toYaml -}}
{{- end -}}

{{/* commonAnnotations under the object's own (.extra, which win); empty when none. */}}
{{- define "algorail.annotations" -}}
{{- with merge (deepCopy (.extra | default dict)) (deepCopy (.root.Values.commonAnnotations | default dict)) }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* Readiness and liveness probes on GET /healthz from .values.{readiness,liveness}Probe. */}}
{{- define "algorail.probes" -}}
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
The pod spec pieces both services take from their values block (.values): scheduling,
init containers; (dict "root" $ "values" .Values.gateway "component" "gateway").
*/}}
{{- define "algorail.podScheduling" -}}
{{- $v := .values -}}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
{{- $selector := include "algorail.selectorLabels" $.root | fromYaml }}
{{- $_ := set $selector "app.kubernetes.io/component" $.component }}
topologySpreadConstraints:
  {{- range . }}
  - {{- toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" $selector))) | nindent 4 }}
  {{- end }}
{{- end }}
{{- with $v.initContainers }}
initContainers:
  {{- tpl (toYaml .) $.root | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Egress both services need: DNS, Kafka, Redis; then (.rules) the service's own.
*/}}
{{- define "algorail.egressRules" -}}
{{- $egress := .root.Values.networkPolicy.egress -}}
- to:
    {{- toYaml $egress.dns | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- /* following the cluster's plans, both read ConfigMaps from the API server */}}
{{- $api := ternary $egress.apiServerPorts (list) (.root.Values.plan.fromCluster | default false) }}
- ports:
    {{- range concat $egress.kafkaPorts $egress.redisPorts .ports $api }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- with concat (.rules | default list) $egress.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select this release's pods (add app.kubernetes.io/component per service). */}}
{{- define "algorail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "algorail.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The ServiceAccount the services run as. */}}
{{- define "algorail.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "algorail.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The algorail image, pinned by tag (and digest when given). */}}
{{- define "algorail.image" -}}
{{- $img := .Values.image -}}
{{- $repo := ternary $img.repository (printf "%s/%s" $img.registry $img.repository) (empty $img.registry) -}}
{{- if $img.digest -}}
{{- printf "%s:%s@%s" $repo $img.tag $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $img.tag -}}
{{- end -}}
{{- end -}}

{{/*
Credentials for the gateway and the hook dispatcher, only ever through secretKeyRef; the
plain settings are in the config ConfigMap (URLs validateValues checked hold no password).
*/}}
{{- define "algorail.secretEnv" -}}
{{- if .Values.results.existingSecret }}
- name: ALGORAIL_RESULTS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.results.existingSecret }}
      key: {{ .Values.results.existingSecretKey }}
{{- end }}
{{- if .Values.objectStore.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.existingSecret }}
      key: {{ .Values.objectStore.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.existingSecret }}
      key: {{ .Values.objectStore.secretAccessKeyKey }}
{{- end }}
{{- end -}}

{{/* The plan volume: plan.json from the algorail-pipeline chart's ConfigMap. */}}
{{- define "algorail.planVolume" -}}
{{- if not .Values.plan.fromCluster }}
- name: plans
  configMap:
    name: {{ .Values.plan.configMap }}
    items:
      - key: plan.json
        path: plan.json
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{/*
Mounts of the plan ConfigMap as a folder (never with subPath: kubelet then swaps its files
when the ConfigMap changes, and the services follow) and a writable /tmp (the root
filesystem is read-only). Following the cluster's plans, there is nothing to mount.
*/}}
{{- define "algorail.planMounts" -}}
{{- if not .Values.plan.fromCluster }}
- name: plans
  mountPath: /etc/algorail/plans
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod-level settings shared by both Deployments. */}}
{{- define "algorail.podSpecCommon" -}}
serviceAccountName: {{ include "algorail.serviceAccountName" . }}
{{- /* following the cluster's plans, the services read ConfigMaps with the token */}}
automountServiceAccountToken: {{ or .Values.serviceAccount.automountToken .Values.plan.fromCluster }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* True (non-empty) when the gateway and dispatcher have a plan to serve. */}}
{{- define "algorail.servesPlan" -}}
{{- if or .Values.plan.configMap .Values.plan.fromCluster -}}true{{- end -}}
{{- end -}}

{{/* Where the gateway and the dispatcher take their plans from: arguments. */}}
{{- define "algorail.planArgs" -}}
{{- if .Values.plan.fromCluster }}
- --plans-from-cluster
{{- with .Values.plan.selector }}
- --plans-selector
- {{ . | quote }}
{{- end }}
{{- else }}
- --plans-dir
- /etc/algorail/plans
{{- end }}
{{- end -}}

{{/*
Gathers every bad combination of values into one failure message, each line naming the
value and the --set that fixes it.
*/}}
{{- define "algorail.validateValues" -}}
{{- $problems := list -}}
{{- if contains "@" .Values.results.url -}}
{{- $problems = append $problems "results.url: holds credentials; put the whole URL in a Secret and --set results.existingSecret=NAME (key: results.existingSecretKey)" -}}
{{- end -}}
{{- if contains "@" .Values.objectStore.url -}}
{{- $problems = append $problems "objectStore.url: holds credentials; put the key pair in a Secret and --set objectStore.existingSecret=NAME" -}}
{{- end -}}
{{- if not (hasPrefix "s3://" .Values.objectStore.url) -}}
{{- $problems = append $problems "objectStore.url: must look like s3://BUCKET?endpoint=URL; --set objectStore.url=s3://algorail?endpoint=http://minio:9000" -}}
{{- end -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) -}}
{{- $problems = append $problems "auth.existingSecret: required while auth.enabled=true; kubectl create secret generic algorail-api-keys --from-file=api-keys=keys.txt, then --set auth.existingSecret=algorail-api-keys" -}}
{{- end -}}
{{- if and .Values.plan.configMap .Values.plan.fromCluster -}}
{{- $problems = append $problems "plan.configMap: set together with plan.fromCluster=true; give one: a plan ConfigMap to serve, or every plan of the namespace" -}}
{{- end -}}
{{- if not .Values.kafka.bootstrapServers -}}
{{- $problems = append $problems "kafka.bootstrapServers: empty; --set kafka.bootstrapServers=HOST:PORT" -}}
{{- end -}}
{{- if and .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.minReplicas) (int .Values.gateway.autoscaling.maxReplicas)) -}}
{{- $problems = append $problems "gateway.autoscaling.minReplicas: larger than maxReplicas; --set gateway.autoscaling.maxReplicas=N" -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "\n\nalgorail: invalid values:\n  - %s\n" (join "\n  - " $problems)) -}}
{{- end -}}
{{- end -}}
