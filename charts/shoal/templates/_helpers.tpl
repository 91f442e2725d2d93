{{/*
Names. Every object is <fullname>-<component>; fullname is the release name unless
fullnameOverride is set (trimmed so that <fullname>-buildindex-config and the origins'
pod names stay within 63 characters).
*/}}
{{- define "shoal.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* dict "root" $ "component" "proxy" -> <fullname>-proxy */}}
{{- define "shoal.componentName" -}}
{{- printf "%s-%s" (include "shoal.fullname" .root) .component -}}
{{- end -}}

{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "shoal.labels" -}}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/part-of: shoal
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* image and pull policy of a component: dict "root" $ "component" "proxy" */}}
{{- define "shoal.image" -}}
{{- $c := index .root.Values .component -}}
{{- $repo := $c.image.repository -}}
{{- with .root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo (toString (default .root.Values.image.tag $c.image.tag)) -}}
{{- end -}}

{{- define "shoal.pullPolicy" -}}
{{- $c := index .root.Values .component -}}
{{- default .root.Values.image.pullPolicy $c.image.pullPolicy -}}
{{- end -}}

{{/* In-cluster addresses. */}}
{{- define "shoal.svcHost" -}}
{{- printf "%s.%s.svc.%s" (include "shoal.componentName" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- define "shoal.originDNS" -}}
{{- printf "%s:%d" (include "shoal.svcHost" (dict "root" . "component" "origin")) (int .Values.origin.port) -}}
{{- end -}}

{{- define "shoal.buildIndexURL" -}}
{{- printf "http://%s:%d" (include "shoal.svcHost" (dict "root" . "component" "buildindex")) (int .Values.buildindex.port) -}}
{{- end -}}

{{/* The agents' trackers block: every tracker pod, by the headless members Service. */}}
{{- define "shoal.trackersBlock" -}}
{{- toYaml (dict
  "dns" (printf "%s-members.%s.svc.%s:%d" (include "shoal.componentName" (dict "root" . "component" "tracker")) .Release.Namespace .Values.clusterDomain (int .Values.tracker.port))
  "dns_interval" .Values.origin.dnsInterval
  "replicas" (int .Values.tracker.swarmReplicas)
  "health_interval" .Values.origin.healthInterval) -}}
{{- end -}}

{{- define "shoal.registryHost" -}}
{{- default (printf "%s:%d" (include "shoal.svcHost" (dict "root" . "component" "proxy")) (int .Values.proxy.port)) .Values.proxy.registryHost -}}
{{- end -}}

{{/* The origins block of the proxy, tracker and agents (the origins' own cluster block). */}}
{{- define "shoal.originsBlock" -}}
{{- toYaml (dict
  "dns" (include "shoal.originDNS" .)
  "dns_interval" .Values.origin.dnsInterval
  "replicas" (int .Values.origin.blobReplicas)
  "health_interval" .Values.origin.healthInterval) -}}
{{- end -}}

{{- define "shoal.logBlock" -}}
{{- toYaml (dict "level" .Values.log.level "format" .Values.log.format) -}}
{{- end -}}

{{/* eviction block from a component's values.eviction */}}
{{- define "shoal.evictionBlock" -}}
{{- toYaml (dict
  "tti" .tti
  "capacity" (int64 .capacity)
  "high_watermark" (float64 .highWatermark)
  "low_watermark" (float64 .lowWatermark)) -}}
{{- end -}}

{{/* The backend block of the origins and the build-index. */}}
{{- define "shoal.backendBlock" -}}
{{- $b := .Values.backend -}}
{{- $out := dict "kind" $b.kind -}}
{{- if eq $b.kind "fs" -}}
{{- $_ := set $out "fs" (dict "root" "/var/lib/shoal/backend") -}}
{{- else if eq $b.kind "s3" -}}
{{- $s3 := dict "bucket" $b.s3.bucket -}}
{{- with $b.s3.region }}{{ $_ := set $s3 "region" . }}{{ end -}}
{{- with $b.s3.prefix }}{{ $_ := set $s3 "prefix" . }}{{ end -}}
{{- with $b.s3.endpoint }}{{ $_ := set $s3 "endpoint" . }}{{ end -}}
{{- if $b.s3.pathStyle }}{{ $_ := set $s3 "path_style" true }}{{ end -}}
{{- with $b.s3.partSize }}{{ $_ := set $s3 "part_size" (int64 .) }}{{ end -}}
{{- with $b.s3.concurrency }}{{ $_ := set $s3 "concurrency" (int .) }}{{ end -}}
{{- $_ := set $out "s3" $s3 -}}
{{- else if eq $b.kind "gcs" -}}
{{- $gcs := dict "bucket" $b.gcs.bucket -}}
{{- with $b.gcs.prefix }}{{ $_ := set $gcs "prefix" . }}{{ end -}}
{{- with $b.gcs.endpoint }}{{ $_ := set $gcs "endpoint" . }}{{ end -}}
{{- with $b.gcs.chunkSize }}{{ $_ := set $gcs "chunk_size" (int .) }}{{ end -}}
{{- if $b.gcs.existingSecret }}{{ $_ := set $gcs "credentials_file" (printf "/etc/shoal/gcs/%s" $b.gcs.secretKey) }}{{ end -}}
{{- $_ := set $out "gcs" $gcs -}}
{{- else -}}
{{- fail (printf "backend.kind: unknown %q (set backend.kind: fs | s3 | gcs)" $b.kind) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
The repository prefix of an upstream's images in Shoal: the host lower-cased, ":" as
"_", and a slash (lib/mirror.Prefix): docker.io -> docker.io/, upstream.test:5000 ->
upstream.test_5000/.
*/}}
{{- define "shoal.upstreamPrefix" -}}
{{- printf "%s/" (lower . | replace ":" "_") -}}
{{- end -}}

{{/* The namespaces list of the origins and the build-index: upstreams, then extraNamespaces. */}}
{{- define "shoal.namespaces" -}}
{{- $list := list -}}
{{- $seen := dict -}}
{{- range $i, $u := .Values.upstreams -}}
{{- $prefix := include "shoal.upstreamPrefix" $u.host -}}
{{- if hasKey $seen $prefix -}}
{{- fail (printf "upstreams[%d].host: %q is listed twice (upstreams[%d]; hosts are case-insensitive): remove the duplicate" $i $u.host (get $seen $prefix)) -}}
{{- end -}}
{{- $_ := set $seen $prefix $i -}}
{{- $reg := dict "url" $u.url "repository_prefix" $prefix -}}
{{- with $u.username }}{{ $_ := set $reg "username" . }}{{ end -}}
{{- if and $u.passwordSecret $u.passwordSecret.name }}{{ $_ := set $reg "password_file" (printf "/etc/shoal/upstreams/%d/password" $i) }}{{ end -}}
{{- if $u.insecure }}{{ $_ := set $reg "insecure" true }}{{ end -}}
{{- with $u.tagTTL }}{{ $_ := set $reg "tag_ttl" . }}{{ end -}}
{{- $list = append $list (dict "match" (printf "^%s" (regexQuoteMeta $prefix)) "backend" (dict "kind" "registry" "registry" $reg)) -}}
{{- end -}}
{{- range .Values.extraNamespaces -}}
{{- $list = append $list . -}}
{{- end -}}
{{- toYaml $list -}}
{{- end -}}

{{/* Volumes and mounts every pod of the origins and the build-index shares: backend, upstream passwords. */}}
{{- define "shoal.backendVolumes" -}}
{{- $b := .Values.backend -}}
{{- if eq $b.kind "fs" }}
- name: backend
  persistentVolumeClaim:
    claimName: {{ default (include "shoal.componentName" (dict "root" . "component" "backend")) $b.fs.existingClaim }}
{{- else if and (eq $b.kind "gcs") $b.gcs.existingSecret }}
- name: gcs-credentials
  secret:
    secretName: {{ $b.gcs.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $b.gcs.secretKey }}
        path: {{ $b.gcs.secretKey }}
{{- end }}
{{- range $i, $u := .Values.upstreams }}
{{- if and $u.passwordSecret $u.passwordSecret.name }}
- name: upstream-{{ $i }}
  secret:
    secretName: {{ $u.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ required (printf "upstreams[%d].passwordSecret.key: empty (name the Secret's key holding the password)" $i) $u.passwordSecret.key }}
        path: password
{{- end }}
{{- end }}
{{- end -}}

{{- define "shoal.backendMounts" -}}
{{- $b := .Values.backend -}}
{{- if eq $b.kind "fs" }}
- name: backend
  mountPath: /var/lib/shoal/backend
{{- else if and (eq $b.kind "gcs") $b.gcs.existingSecret }}
- name: gcs-credentials
  mountPath: /etc/shoal/gcs
  readOnly: true
{{- end }}
{{- range $i, $u := .Values.upstreams }}
{{- if and $u.passwordSecret $u.passwordSecret.name }}
- name: upstream-{{ $i }}
  mountPath: /etc/shoal/upstreams/{{ $i }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "shoal.backendEnv" -}}
{{- $b := .Values.backend -}}
{{- if and (eq $b.kind "s3") $b.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ $b.s3.existingSecret }}, key: {{ $b.s3.accessKeyIdKey }}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ $b.s3.existingSecret }}, key: {{ $b.s3.secretAccessKeyKey }}}
{{- end }}
{{- end -}}

{{/* Pod and container security for the non-root components. */}}
{{- define "shoal.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shoal.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Liveness and readiness probes on the named port http (dict "host" for the agent). */}}
{{- define "shoal.probes" -}}
livenessProbe:
  httpGet:
    {{- with .host }}
    host: {{ . }}
    {{- end }}
    path: /health
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    {{- with .host }}
    host: {{ . }}
    {{- end }}
    path: /readiness
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* A PodDisruptionBudget: dict "root" $ "component" "proxy" "pdb" .Values.proxy.pdb */}}
{{- define "shoal.pdb" -}}
{{- if .pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "shoal.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "shoal.labels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .pdb.minAvailable) }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ if kindIs "invalid" .pdb.maxUnavailable }}1{{ else }}{{ .pdb.maxUnavailable }}{{ end }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "shoal.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* A PVC's storageClassName line: null leaves it out, "-" is "". */}}
{{- define "shoal.storageClass" -}}
{{- if not (kindIs "invalid" .) -}}
{{- if eq (toString .) "-" }}
storageClassName: ""
{{- else }}
storageClassName: {{ . | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Preheat (docs/HARBOR.md). The proxy's preheat block from .Values.preheat: auth and
upstream passwords point at the Secret keys shoal.preheatVolumes mounts, trackers at
the chart's trackers (as the agents' trackers block). Checked even while disabled, as
the proxy checks its block, so a mistake surfaces before it is turned on.
  /etc/shoal/preheat/
  ├── auth/secret                   preheat.auth.existingSecret[secretKey]
  └── upstreams/<i>/password        preheat.upstreams[i].existingSecret[secretKey]
*/}}
{{- define "shoal.preheatCheck" -}}
{{- $p := .Values.preheat -}}
{{- $a := $p.auth -}}
{{- $mode := default "none" $a.mode -}}
{{- $what := get (dict "bearer" "token" "header" "header's value" "basic" "password") $mode -}}
{{- if not (has $mode (list "none" "bearer" "basic" "header")) -}}
{{- fail (printf "preheat.auth.mode: %q is not a mode (set none, bearer, basic or header)" $mode) -}}
{{- end -}}
{{- if eq $mode "none" -}}
{{- if or $a.existingSecret $a.header $a.username -}}
{{- fail "preheat.auth.mode: none, but preheat.auth.existingSecret, header or username is set (set preheat.auth.mode: bearer, header or basic, or drop them)" -}}
{{- end -}}
{{- else -}}
{{- if not $a.existingSecret -}}
{{- fail (printf "preheat.auth.existingSecret: empty with preheat.auth.mode %s (create a Secret holding the %s Harbor sends, set preheat.auth.existingSecret to its name and preheat.auth.secretKey to its key)" $mode $what) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $mode "header") (not $a.header) -}}
{{- fail "preheat.auth.header: empty with preheat.auth.mode header (set the header's name, e.g. X-Api-Key, the key of Harbor's CUSTOM auth)" -}}
{{- end -}}
{{- if and $a.header (ne $mode "header") (ne $mode "none") -}}
{{- fail (printf "preheat.auth.header: set with preheat.auth.mode %s (it is for mode header only; drop it)" $mode) -}}
{{- end -}}
{{- if and (eq $mode "basic") (not $a.username) -}}
{{- fail "preheat.auth.username: empty with preheat.auth.mode basic (set the user Harbor sends)" -}}
{{- end -}}
{{- if and $a.username (ne $mode "basic") (ne $mode "none") -}}
{{- fail (printf "preheat.auth.username: set with preheat.auth.mode %s (it is for mode basic only; drop it)" $mode) -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $i, $u := $p.upstreams -}}
{{- if not $u.url -}}
{{- fail (printf "preheat.upstreams[%d].url: empty (set the registry Shoal pulls the event's content from, e.g. https://harbor.example.com)" $i) -}}
{{- end -}}
{{- $host := lower (default (get (urlParse $u.url) "host") $u.host) -}}
{{- if hasKey $seen $host -}}
{{- fail (printf "preheat.upstreams[%d].host: %s is also preheat.upstreams[%d]'s (keep one upstream per host)" $i $host (get $seen $host)) -}}
{{- end -}}
{{- $_ := set $seen $host $i -}}
{{- if and $u.existingSecret (not $u.username) -}}
{{- fail (printf "preheat.upstreams[%d].username: empty but preheat.upstreams[%d].existingSecret holds a password (set the user, e.g. a Harbor robot account, or drop existingSecret for anonymous pulls)" $i $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shoal.preheatBlock" -}}
{{- $p := .Values.preheat -}}
{{- $a := $p.auth -}}
{{- $auth := dict "mode" (default "none" $a.mode) -}}
{{- if ne (default "none" $a.mode) "none" }}{{ $_ := set $auth "secret_file" "/etc/shoal/preheat/auth/secret" }}{{ end -}}
{{- with $a.header }}{{ $_ := set $auth "header" . }}{{ end -}}
{{- with $a.username }}{{ $_ := set $auth "username" . }}{{ end -}}
{{- $r := $p.runner -}}
{{- $runner := dict "max_blobs_per_job" (int $r.maxBlobsPerJob) "max_jobs" (int $r.maxJobs) -}}
{{- with $r.jobTimeout }}{{ $_ := set $runner "job_timeout" . }}{{ end -}}
{{- with $r.platforms }}{{ $_ := set $runner "platforms" . }}{{ end -}}
{{- $ups := list -}}
{{- range $i, $u := $p.upstreams -}}
{{- $up := dict "url" $u.url -}}
{{- with $u.host }}{{ $_ := set $up "host" . }}{{ end -}}
{{- with $u.username }}{{ $_ := set $up "username" . }}{{ end -}}
{{- if $u.existingSecret }}{{ $_ := set $up "password_file" (printf "/etc/shoal/preheat/upstreams/%d/password" $i) }}{{ end -}}
{{- if $u.insecure }}{{ $_ := set $up "insecure" true }}{{ end -}}
{{- with $u.timeout }}{{ $_ := set $up "timeout" . }}{{ end -}}
{{- $ups = append $ups $up -}}
{{- end -}}
{{- $out := dict "enabled" true "auth" $auth "runner" $runner "upstreams" $ups -}}
{{- with $p.allowedRegistries }}{{ $_ := set $out "allowed_registries" . }}{{ end -}}
{{- /* proxy.config.preheat.trackers, when set, replaces the chart's (a merge would set both static and dns) */ -}}
{{- if not (dig "preheat" "trackers" "" .Values.proxy.config) -}}
{{- $_ := set $out "trackers" (include "shoal.trackersBlock" . | fromYaml) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The proxy pod's preheat Secrets (each one key, read-only), with preheat.enabled. */}}
{{- define "shoal.preheatVolumes" -}}
{{- $p := .Values.preheat -}}
{{- if $p.enabled }}
{{- if ne (default "none" $p.auth.mode) "none" }}
- name: preheat-auth
  secret:
    secretName: {{ $p.auth.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $p.auth.secretKey }}
        path: secret
{{- end }}
{{- range $i, $u := $p.upstreams }}
{{- if $u.existingSecret }}
- name: preheat-upstream-{{ $i }}
  secret:
    secretName: {{ $u.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ default "password" $u.secretKey }}
        path: password
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "shoal.preheatMounts" -}}
{{- $p := .Values.preheat -}}
{{- if $p.enabled }}
{{- if ne (default "none" $p.auth.mode) "none" }}
- name: preheat-auth
  mountPath: /etc/shoal/preheat/auth
  readOnly: true
{{- end }}
{{- range $i, $u := $p.upstreams }}
{{- if $u.existingSecret }}
- name: preheat-upstream-{{ $i }}
  mountPath: /etc/shoal/preheat/upstreams/{{ $i }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
