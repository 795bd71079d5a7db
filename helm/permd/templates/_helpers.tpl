{{/*
Named templates of the permd chart.

The public ones — "permd.sidecar", "permd.volumes", "permd.podAnnotations",
"permd.clientAddress", "permd.networkPolicyIngress" — take a dict:

  root    the caller's top-level context (`.`): Release, Chart, Capabilities
  values  permd's values: `.Values` in this chart, `.Values.permd` in an
          application chart that depends on this one (Helm merges this
          chart's defaults in, so every key of values.yaml is present)

so an application chart writes, in its pod spec:

  containers:
    - name: my-app
      ...
    {{- include "permd.sidecar" (dict "root" . "values" .Values.permd) | nindent 4 }}
  volumes:
    {{- include "permd.volumes" (dict "root" . "values" .Values.permd) | nindent 4 }}

Nothing here reads `root.Chart`, so names and the image come out the same
whichever chart includes them.
*/}}

{{/*
permd.fullname: prefix of every object name: "<release>-permd", or the
release name when it already contains "permd", or values.fullnameOverride.
It depends on the release and values only, so the ConfigMap this chart
renders and the volume an including chart renders agree on the name.
*/}}
{{- define "permd.fullname" -}}
{{- $v := .values -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "permd" .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-permd" .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* permd.dataConfigMapName: the ConfigMap the data file is mounted from, "" for the demo tenant. */}}
{{- define "permd.dataConfigMapName" -}}
{{- if .values.data.inline -}}
{{- printf "%s-data" (include "permd.fullname" . | trunc 58 | trimSuffix "-") -}}
{{- else if .values.data.configMap.name -}}
{{- .values.data.configMap.name -}}
{{- end -}}
{{- end -}}

{{/* permd.dataKey: the key (and file name) of the data file in that ConfigMap. */}}
{{- define "permd.dataKey" -}}
{{- if .values.data.inline -}}data.yaml{{- else -}}{{ .values.data.configMap.key }}{{- end -}}
{{- end -}}

{{/* permd.image: repository:tag, or repository@digest when a digest is set. */}}
{{- define "permd.image" -}}
{{- $i := .values.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository $i.tag -}}
{{- end -}}
{{- end -}}

{{/*
permd.podHost: the host permd binds where something outside the pod must
reach it: values.listenHost, or 0.0.0.0 (a loopback listenHost would reach
nothing outside, so it counts as unset here).
*/}}
{{- define "permd.podHost" -}}
{{- $host := .values.listenHost | default "0.0.0.0" -}}
{{- if hasPrefix "127." $host -}}0.0.0.0{{- else -}}{{ $host }}{{- end -}}
{{- end -}}

{{/*
permd.listenHost: the host of the Authorizer's port (and AuthZEN's): the
pod's loopback, where the app in the same pod calls it, unless
exposeBeyondPod makes it a service for other pods. The kubelet's probes do
not need it: they go to the probe and metrics port (permd.metricsAddress).
*/}}
{{- define "permd.listenHost" -}}
{{- if .values.exposeBeyondPod -}}
{{- include "permd.podHost" . -}}
{{- else -}}
127.0.0.1
{{- end -}}
{{- end -}}

{{/* permd.listenAddress: PERMD_LISTEN. */}}
{{- define "permd.listenAddress" -}}
{{- printf "%s:%d" (include "permd.listenHost" .) (.values.port | int) -}}
{{- end -}}

{{/* permd.authzenAddress: PERMD_AUTHZEN_LISTEN (with authzen.enabled). */}}
{{- define "permd.authzenAddress" -}}
{{- printf "%s:%d" (include "permd.listenHost" .) (.values.authzen.port | int) -}}
{{- end -}}

{{/*
permd.probeListener: "true" when permd's probe and metrics listener is on
(GET /metrics and grpc.health.v1.Health, plaintext, on metrics.port): for
Prometheus (metrics.enabled) or for the kubelet's probes (probes.enabled),
else "".
*/}}
{{- define "permd.probeListener" -}}
{{- if or .values.metrics.enabled .values.probes.enabled -}}true{{- end -}}
{{- end -}}

{{/* permd.metricsAddress: PERMD_METRICS_LISTEN: the pod IP's port, for Prometheus and the kubelet. */}}
{{- define "permd.metricsAddress" -}}
{{- printf "%s:%d" (include "permd.podHost" .) (.values.metrics.port | int) -}}
{{- end -}}

{{/*
permd.decisionLog: PERMD_DECISION_LOG: off, stdout or a file path (an
unquoted `off` in YAML arrives as false: it means off).
*/}}
{{- define "permd.decisionLog" -}}
{{- $d := .values.decisionLog.destination -}}
{{- if kindIs "bool" $d -}}off{{- else -}}{{ $d }}{{- end -}}
{{- end -}}

{{/*
permd.decisionLogDir: the directory of the decision log file, where the
sidecar mounts a writable emptyDir (the root filesystem is read-only); ""
for off and stdout.
*/}}
{{- define "permd.decisionLogDir" -}}
{{- $d := include "permd.decisionLog" . -}}
{{- if hasPrefix "/" $d -}}{{ regexReplaceAll "/[^/]+$" $d "" }}{{- end -}}
{{- end -}}

{{/*
permd.clientAddress: the address an app container in the same pod dials
(`PERMD_ADDR`, as `permd check` reads it): loopback, https with TLS (the
certificate must name localhost).
*/}}
{{- define "permd.clientAddress" -}}
{{- if .values.tls.enabled -}}
{{- printf "https://localhost:%d" (.values.port | int) -}}
{{- else -}}
{{- printf "http://127.0.0.1:%d" (.values.port | int) -}}
{{- end -}}
{{- end -}}

{{/*
permd.durationMs: a duration as permd reads it ("250ms", "30s", "5m", "2h",
"7d", "0") in milliseconds; the schema has checked its form.
*/}}
{{- define "permd.durationMs" -}}
{{- $text := toString . -}}
{{- $digits := regexFind "^[0-9]+" $text | default "0" -}}
{{- $n := regexReplaceAll "^0+([0-9])" $digits "${1}" | int64 -}}
{{- $unit := trimPrefix $digits $text -}}
{{- $scale := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000) $unit | default 0 -}}
{{- mul $n $scale -}}
{{- end -}}

{{/*
permd.validate: combinations the schema cannot express; fails the render
with a message that says what to change. Renders nothing.
*/}}
{{- define "permd.validate" -}}
{{- $v := .values -}}
{{- if and $v.data.inline $v.data.configMap.name -}}
{{- fail "permd: set data.inline or data.configMap.name, not both" -}}
{{- end -}}
{{- if and $v.secrets.existingSecret (or $v.data.inline $v.data.configMap.name) -}}
{{- fail "permd: secrets.existingSecret makes permd follow PostgreSQL; it serves one source: leave data.inline and data.configMap.name empty" -}}
{{- end -}}
{{- if $v.nats.url -}}
{{- if $v.secrets.existingSecret -}}
{{- fail "permd: nats.url makes the sidecar follow a permd relay through NATS, with no database connection of its own: leave secrets.existingSecret empty (the relay's database is relay.database.existingSecret)" -}}
{{- end -}}
{{- if or $v.data.inline $v.data.configMap.name -}}
{{- fail "permd: nats.url makes the sidecar follow a permd relay through NATS; it serves one source: leave data.inline and data.configMap.name empty" -}}
{{- end -}}
{{- else -}}
{{- if $v.tenants -}}
{{- fail "permd: tenants chooses what a sidecar follows through NATS: it needs nats.url (a file or database is served whole)" -}}
{{- end -}}
{{- end -}}
{{- if $v.relay.enabled -}}
{{- if not $v.nats.url -}}
{{- fail "permd: relay.enabled publishes to NATS: it needs nats.url" -}}
{{- end -}}
{{- if not $v.relay.database.existingSecret -}}
{{- fail "permd: relay.enabled reads the PostgreSQL changelog: it needs relay.database.existingSecret (a Secret whose key relay.database.key holds the database URL)" -}}
{{- end -}}
{{- $interval := include "permd.durationMs" $v.relay.snapshotInterval | int64 -}}
{{- $maxAge := include "permd.durationMs" $v.relay.streamMaxAge | int64 -}}
{{- if lt $maxAge (mul 2 $interval) -}}
{{- fail (printf "permd: relay.streamMaxAge (%v) must be at least twice relay.snapshotInterval (%v): a sidecar that falls behind the stream reloads from a snapshot, which must be newer than what the stream dropped" $v.relay.streamMaxAge $v.relay.snapshotInterval) -}}
{{- end -}}
{{- end -}}
{{- if and $v.tls.enabled (not $v.tls.secretName) -}}
{{- fail "permd: tls.enabled needs tls.secretName (a kubernetes.io/tls Secret with tls.crt and tls.key)" -}}
{{- end -}}
{{- if and $v.tls.clientCa (not $v.tls.enabled) -}}
{{- fail "permd: tls.clientCa needs tls.enabled" -}}
{{- end -}}
{{- if and $v.exposeBeyondPod (not $v.tls.enabled) (not $v.allowPlaintextBeyondPod) -}}
{{- fail "permd: exposeBeyondPod serves other pods: enable tls (tls.enabled, tls.secretName), or set allowPlaintextBeyondPod: true if a mesh encrypts pod-to-pod traffic" -}}
{{- end -}}
{{- $probeListener := include "permd.probeListener" . -}}
{{- if and $probeListener (eq ($v.metrics.port | int) ($v.port | int)) -}}
{{- fail (printf "permd: metrics.port and port are both %d; they must differ (metrics.port is the probe and metrics listener, on whenever metrics.enabled or probes.enabled)" ($v.port | int)) -}}
{{- end -}}
{{- if $v.authzen.enabled -}}
{{- if eq ($v.authzen.port | int) ($v.port | int) -}}
{{- fail (printf "permd: authzen.port and port are both %d; they must differ" ($v.port | int)) -}}
{{- end -}}
{{- if and $probeListener (eq ($v.authzen.port | int) ($v.metrics.port | int)) -}}
{{- fail (printf "permd: authzen.port and metrics.port are both %d; they must differ" ($v.metrics.port | int)) -}}
{{- end -}}
{{- if and $v.exposeBeyondPod (not $v.allowPlaintextBeyondPod) -}}
{{- fail "permd: authzen.enabled with exposeBeyondPod would serve AuthZEN to other pods in plain HTTP (its listener has no TLS): set allowPlaintextBeyondPod: true if a mesh encrypts pod-to-pod traffic, or leave exposeBeyondPod false (AuthZEN then listens on 127.0.0.1 for the pod's own app)" -}}
{{- end -}}
{{- end -}}
{{- $logDir := include "permd.decisionLogDir" . -}}
{{- if or (eq $logDir "/etc") (hasPrefix "/etc/" $logDir) -}}
{{- fail (printf "permd: decisionLog.destination %s: the chart mounts a writable volume at the file's directory, which would hide the image's %s (CA certificates, permd's data, TLS and NATS files live under /etc): put the file elsewhere, e.g. /var/log/permd/decisions.log" (include "permd.decisionLog" .) $logDir) -}}
{{- end -}}
{{- end -}}

{{/* permd.probe: one probe; takes (dict "values" $v "kind" "startup|readiness|liveness" "service" "<name or empty>"). */}}
{{- define "permd.probe" -}}
{{- include "permd.probeRaw" . | trim -}}
{{- end -}}

{{/*
Native gRPC probes on the probe and metrics port, which speaks plaintext
whether or not the Authorizer's port uses TLS, and binds the pod IP while
the Authorizer stays on loopback.
*/}}
{{- define "permd.probeRaw" -}}
{{- $v := .values -}}
{{- $p := index $v.probes .kind }}
grpc:
  port: {{ $v.metrics.port | int }}
  {{- if .service }}
  service: {{ .service | quote }}
  {{- end }}
periodSeconds: {{ $p.periodSeconds | int }}
timeoutSeconds: {{ $p.timeoutSeconds | int }}
failureThreshold: {{ $p.failureThreshold | int }}
{{- end -}}

{{/*
permd.natsEnv: how `permd serve` and `permd relay` reach NATS (both read
the same variables): PERMD_NATS_URL, PERMD_NATS_PREFIX, and the credentials
file (mounted by permd.natsCredsVolume) and token when their Secrets are
named. Starts with a newline; renders nothing without nats.url.
*/}}
{{- define "permd.natsEnv" -}}
{{- $n := .values.nats -}}
{{- if $n.url }}
- name: PERMD_NATS_URL
  value: {{ $n.url | quote }}
- name: PERMD_NATS_PREFIX
  value: {{ $n.prefix | quote }}
{{- if $n.credentials.secretName }}
- name: PERMD_NATS_CREDS
  value: {{ printf "/etc/permd/nats/%s" (include "permd.natsCredsFile" .) | quote }}
{{- end }}
{{- if $n.token.secretName }}
- name: PERMD_NATS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $n.token.secretName | quote }}
      key: {{ $n.token.key | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* permd.natsCredsFile: the credentials file's name under /etc/permd/nats. */}}
{{- define "permd.natsCredsFile" -}}nats.creds{{- end -}}

{{/* permd.usesNatsCreds: "true" when a NATS credentials file is mounted, else "". */}}
{{- define "permd.usesNatsCreds" -}}
{{- if and .values.nats.url .values.nats.credentials.secretName -}}true{{- end -}}
{{- end -}}

{{/* permd.natsCredsMount: the volumeMounts item for the credentials file. */}}
{{- define "permd.natsCredsMount" -}}
- name: permd-nats-creds
  mountPath: /etc/permd/nats
  readOnly: true
{{- end -}}

{{/* permd.natsCredsVolume: the volumes item holding the credentials file. */}}
{{- define "permd.natsCredsVolume" -}}
- name: permd-nats-creds
  secret:
    secretName: {{ .values.nats.credentials.secretName | quote }}
    # 0444: readable by permd's non-root user without an fsGroup.
    defaultMode: 292
    items:
      - key: {{ .values.nats.credentials.key | quote }}
        path: {{ include "permd.natsCredsFile" . }}
{{- end -}}

{{/*
permd.env: every PERMD_* setting `permd serve` reads, from values — except
PERMD_CONFIG: env wins over that file, and the chart sets every setting.
PERMD_API_TOKEN comes from apiToken's Secret, else from
secrets.existingSecret's optional key api-token; the AuthZEN ones only with
authzen.enabled.
The database ones (PERMD_DATABASE_URL, PERMD_ADMIN_TOKEN from the Secret,
PERMD_MAX_STALENESS, PERMD_CHANGELOG_RETENTION) only with
secrets.existingSecret: without a database they mean nothing. The NATS ones
(permd.natsEnv, PERMD_MAX_STALENESS from nats.maxStaleness, PERMD_TENANTS)
only with nats.url.
*/}}
{{- define "permd.env" -}}
{{- $v := .values -}}
- name: PERMD_LISTEN
  value: {{ include "permd.listenAddress" . | quote }}
{{- if include "permd.dataConfigMapName" . }}
- name: PERMD_DATA
  value: {{ printf "/etc/permd/data/%s" (include "permd.dataKey" .) | quote }}
{{- end }}
- name: PERMD_MAX_BATCH
  value: {{ $v.maxBatch | int64 | quote }}
- name: PERMD_MAX_MESSAGE_BYTES
  value: {{ $v.maxMessageBytes | int64 | quote }}
- name: PERMD_MAX_CONCURRENT_REQUESTS
  value: {{ $v.maxConcurrentRequests | int64 | quote }}
- name: PERMD_MAX_CONCURRENT_STREAMS
  value: {{ $v.maxConcurrentStreams | int64 | quote }}
- name: PERMD_MAX_NAME_BYTES
  value: {{ $v.maxNameBytes | int64 | quote }}
- name: PERMD_MAX_CONTEXT_FIELDS
  value: {{ $v.maxContextFields | int64 | quote }}
- name: PERMD_MAX_REVISION_WAITERS
  value: {{ $v.maxRevisionWaiters | int64 | quote }}
- name: PERMD_MAX_MIN_REVISION_WAIT
  value: {{ $v.maxMinRevisionWait | toString | quote }}
- name: PERMD_MAX_REVISION_LEAD
  value: {{ $v.maxRevisionLead | int64 | quote }}
- name: PERMD_MAX_CACHE_BYTES
  value: {{ $v.maxCacheBytes | int64 | quote }}
- name: PERMD_MAX_CONNECTIONS
  value: {{ $v.maxConnections | int64 | quote }}
- name: PERMD_MAX_STREAMS_PER_CONNECTION
  value: {{ $v.maxStreamsPerConnection | int64 | quote }}
- name: PERMD_MAX_HEADER_LIST_BYTES
  value: {{ $v.maxHeaderListBytes | int64 | quote }}
- name: PERMD_MAX_BUFFERED_REQUEST_BYTES
  value: {{ $v.maxBufferedRequestBytes | int64 | quote }}
- name: PERMD_MAX_BUFFERED_REQUEST_BYTES_PER_CONNECTION
  value: {{ $v.maxBufferedRequestBytesPerConnection | int64 | quote }}
- name: PERMD_REQUEST_BODY_TIMEOUT
  value: {{ $v.requestBodyTimeout | toString | quote }}
- name: PERMD_HANDSHAKE_TIMEOUT
  value: {{ $v.handshakeTimeout | toString | quote }}
- name: PERMD_IDLE_TIMEOUT
  value: {{ $v.idleTimeout | toString | quote }}
- name: PERMD_MAX_DATA_FILE_BYTES
  value: {{ $v.maxDataFileBytes | int64 | quote }}
{{- if $v.tls.enabled }}
- name: PERMD_TLS_CERT
  value: /etc/permd/tls/tls.crt
- name: PERMD_TLS_KEY
  value: /etc/permd/tls/tls.key
{{- if $v.tls.clientCa }}
- name: PERMD_TLS_CLIENT_CA
  value: /etc/permd/tls/ca.crt
{{- end }}
{{- end }}
{{- if include "permd.probeListener" . }}
- name: PERMD_METRICS_LISTEN
  value: {{ include "permd.metricsAddress" . | quote }}
{{- else }}
- name: PERMD_NO_METRICS
  value: "true"
{{- end }}
{{- if $v.apiToken.secretName }}
- name: PERMD_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.apiToken.secretName | quote }}
      key: {{ $v.apiToken.key | quote }}
{{- else if $v.secrets.existingSecret }}
- name: PERMD_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.existingSecret | quote }}
      key: api-token
      optional: true
{{- end }}
- name: PERMD_DECISION_LOG
  value: {{ include "permd.decisionLog" . | quote }}
- name: PERMD_DECISION_LOG_SAMPLE
  value: {{ $v.decisionLog.sample | quote }}
{{- if $v.authzen.enabled }}
- name: PERMD_AUTHZEN_LISTEN
  value: {{ include "permd.authzenAddress" . | quote }}
{{- with $v.authzen.tenant }}
- name: PERMD_AUTHZEN_TENANT
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if $v.secrets.existingSecret }}
- name: PERMD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.existingSecret | quote }}
      key: database-url
- name: PERMD_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.existingSecret | quote }}
      key: admin-token
      optional: true
- name: PERMD_MAX_STALENESS
  value: {{ $v.database.maxStaleness | toString | quote }}
- name: PERMD_CHANGELOG_RETENTION
  value: {{ $v.database.changelogRetention | toString | quote }}
{{- end }}
{{- if $v.nats.url }}
{{- include "permd.natsEnv" . }}
- name: PERMD_MAX_STALENESS
  value: {{ $v.nats.maxStaleness | toString | quote }}
{{- with $v.tenants }}
- name: PERMD_TENANTS
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
- name: PERMD_LOG_FORMAT
  value: {{ $v.logFormat | quote }}
- name: RUST_LOG
  value: {{ $v.logLevel | quote }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
permd.sidecar: the permd container, as one item of a pod spec's
`containers` list (or `initContainers` with values.nativeSidecar).
*/}}
{{- define "permd.sidecar" -}}
{{- include "permd.validate" . -}}
{{- $v := .values -}}
- name: permd
  image: {{ include "permd.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  # "serve" alone: the image's default command adds --listen, and a flag
  # would win over PERMD_LISTEN below.
  args: ["serve"]
  env:
    {{- include "permd.env" . | nindent 4 }}
  {{- $beyondPod := ne (include "permd.listenHost" .) "127.0.0.1" }}
  {{- if or $beyondPod (include "permd.probeListener" .) }}
  # Only the ports reachable from outside the pod: on loopback the
  # Authorizer (and AuthZEN) need no declaration.
  ports:
    {{- if $beyondPod }}
    - name: permd-grpc
      containerPort: {{ $v.port | int }}
      protocol: TCP
    {{- if $v.authzen.enabled }}
    - name: permd-authzen
      containerPort: {{ $v.authzen.port | int }}
      protocol: TCP
    {{- end }}
    {{- end }}
    {{- if include "permd.probeListener" . }}
    - name: {{ $v.metrics.portName }}
      containerPort: {{ $v.metrics.port | int }}
      protocol: TCP
    {{- end }}
  {{- end }}
  {{- if $v.probes.enabled }}
  startupProbe:
    {{- include "permd.probe" (dict "values" $v "kind" "startup" "service" "") | nindent 4 }}
  readinessProbe:
    {{- include "permd.probe" (dict "values" $v "kind" "readiness" "service" "permd.v1.Authorizer") | nindent 4 }}
  livenessProbe:
    {{- include "permd.probe" (dict "values" $v "kind" "liveness" "service" "") | nindent 4 }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  {{- if or (include "permd.dataConfigMapName" .) $v.tls.enabled (include "permd.usesNatsCreds" .) (include "permd.decisionLogDir" .) }}
  volumeMounts:
    {{- if include "permd.dataConfigMapName" . }}
    - name: permd-data
      mountPath: /etc/permd/data
      readOnly: true
    {{- end }}
    {{- if $v.tls.enabled }}
    - name: permd-tls
      mountPath: /etc/permd/tls
      readOnly: true
    {{- end }}
    {{- if include "permd.usesNatsCreds" . }}
    {{- include "permd.natsCredsMount" . | nindent 4 }}
    {{- end }}
    {{- with include "permd.decisionLogDir" . }}
    - name: permd-decision-log
      mountPath: {{ . | quote }}
    {{- end }}
  {{- end }}
{{- end -}}

{{/*
permd.volumes: the volumes the sidecar mounts, as items of a pod spec's
`volumes` list; renders nothing when it mounts none (demo data, no TLS, no
NATS credentials file, no decision log file).
*/}}
{{- define "permd.volumes" -}}
{{- include "permd.volumesRaw" . | trim -}}
{{- end -}}

{{- define "permd.volumesRaw" -}}
{{- $v := .values -}}
{{- $cm := include "permd.dataConfigMapName" . -}}
{{- if $cm }}
- name: permd-data
  configMap:
    name: {{ $cm | quote }}
    items:
      - key: {{ include "permd.dataKey" . | quote }}
        path: {{ include "permd.dataKey" . | quote }}
{{- end }}
{{- if $v.tls.enabled }}
- name: permd-tls
  secret:
    secretName: {{ $v.tls.secretName | quote }}
    # 0444: readable by permd's non-root user without an fsGroup.
    defaultMode: 292
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      {{- if $v.tls.clientCa }}
      - key: ca.crt
        path: ca.crt
      {{- end }}
{{- end }}
{{- if include "permd.usesNatsCreds" . }}
{{ include "permd.natsCredsVolume" . }}
{{- end }}
{{- if include "permd.decisionLogDir" . }}
# The decision log file's directory: writable, the pod's own (a log
# shipper container in the pod may mount it too, by this name).
- name: permd-decision-log
  emptyDir: {}
{{- end }}
{{- end -}}

{{/*
permd.podAnnotations: annotations for the pod template: Prometheus scrape
hints for permd's metrics port (unless monitoring.podMonitor.enabled: one
way of scraping, not two), and a checksum of the data settings so pods
restart (and reload) when they change.
*/}}
{{- define "permd.podAnnotations" -}}
{{- include "permd.podAnnotationsRaw" . | trim -}}
{{- end -}}

{{- define "permd.podAnnotationsRaw" -}}
{{- $v := .values -}}
{{- if and $v.metrics.enabled (not $v.monitoring.podMonitor.enabled) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ $v.metrics.port | int | quote }}
prometheus.io/path: {{ $v.metrics.path | quote }}
{{- end }}
checksum/permd-data: {{ toJson $v.data | sha256sum | quote }}
{{- end -}}

{{/*
permd.networkPolicyIngress: the `ingress` rules a NetworkPolicy of the
sidecar's pods needs for permd, as list items: the probe and metrics port
from networkPolicy.metricsFrom (with metrics.enabled: the kubelet's probes
come from the node, which NetworkPolicy does not filter), and, only with
exposeBeyondPod, the Authorizer's port (and AuthZEN's) from
networkPolicy.grpcFrom. Renders nothing when permd needs no rule; add your
app's own rules beside it.
*/}}
{{- define "permd.networkPolicyIngress" -}}
{{- include "permd.networkPolicyIngressRaw" . | trim -}}
{{- end -}}

{{- define "permd.networkPolicyIngressRaw" -}}
{{- $v := .values -}}
{{- if $v.metrics.enabled }}
# permd's metrics (and gRPC health), for Prometheus.
- ports:
    - port: {{ $v.metrics.port | int }}
      protocol: TCP
  {{- with $v.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if $v.exposeBeyondPod }}
# permd's Authorizer (and AuthZEN), only because exposeBeyondPod is set.
- ports:
    - port: {{ $v.port | int }}
      protocol: TCP
    {{- if $v.authzen.enabled }}
    - port: {{ $v.authzen.port | int }}
      protocol: TCP
    {{- end }}
  {{- with $v.networkPolicy.grpcFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* permd.labels: labels of the objects this chart renders itself. */}}
{{- define "permd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/part-of: permd
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* permd.exampleSelectorLabels: selects the example app's pods. */}}
{{- define "permd.exampleSelectorLabels" -}}
app.kubernetes.io/name: permd-example
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* permd.relaySelectorLabels: selects the relay's pods. */}}
{{- define "permd.relaySelectorLabels" -}}
app.kubernetes.io/name: permd-relay
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/*
permd.relayImage: relay.image's repository with its digest, or its tag
(image.tag when empty); the sidecar's image when relay.image.repository is
empty.
*/}}
{{- define "permd.relayImage" -}}
{{- $i := .values.relay.image -}}
{{- if not $i.repository -}}
{{- include "permd.image" . -}}
{{- else if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository ($i.tag | default .values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* permd.relayMetricsAddress: PERMD_METRICS_LISTEN of the relay: the pod IP's port, for Prometheus and the probes. */}}
{{- define "permd.relayMetricsAddress" -}}
{{- printf "%s:%d" (include "permd.podHost" .) (.values.relay.metricsPort | int) -}}
{{- end -}}

{{/*
permd.relayEnv: every PERMD_* setting `permd relay` reads, except
PERMD_NO_METRICS (the probes need the metrics endpoint).
*/}}
{{- define "permd.relayEnv" -}}
{{- $v := .values -}}
- name: PERMD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.relay.database.existingSecret | quote }}
      key: {{ $v.relay.database.key | quote }}
{{- include "permd.natsEnv" . }}
- name: PERMD_SNAPSHOT_EVERY
  value: {{ $v.relay.snapshotEvery | int64 | quote }}
- name: PERMD_SNAPSHOT_INTERVAL
  value: {{ $v.relay.snapshotInterval | toString | quote }}
- name: PERMD_STREAM_MAX_AGE
  value: {{ $v.relay.streamMaxAge | toString | quote }}
- name: PERMD_SNAPSHOT_FORMAT
  value: {{ $v.relay.snapshotFormat | int64 | quote }}
- name: PERMD_CHANGELOG_RETENTION
  value: {{ $v.relay.changelogRetention | toString | quote }}
- name: PERMD_METRICS_LISTEN
  value: {{ include "permd.relayMetricsAddress" . | quote }}
- name: PERMD_LOG_FORMAT
  value: {{ $v.logFormat | quote }}
- name: RUST_LOG
  value: {{ $v.logLevel | quote }}
{{- end -}}
