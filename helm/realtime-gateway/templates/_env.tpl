{{/*
Environment of the gateway and worker. The services read only environment variables
(services/core/config.ts); the keys of `config`, `gateway.config` and `worker.config` are the keys of
its `settings`, and this table names their variables. test/chart checks the table against config.ts.
*/}}
{{- define "realtime-gateway.envNames" -}}
logLevel: LOG_LEVEL
keyPrefix: REDIS_KEY_PREFIX
workspacePattern: WORKSPACE_NAMESPACE_PATTERN
maxMessageBytes: MAX_MESSAGE_BYTES
recoveryWindowMs: RECOVERY_WINDOW_MS
adapterShards: ADAPTER_SHARDS
adapterRoomHistory: ADAPTER_ROOM_HISTORY
recoveryMaxRead: RECOVERY_MAX_READ
maxRoomsPerSocket: MAX_ROOMS_PER_SOCKET
maxPresenceSubscriptions: MAX_PRESENCE_SUBSCRIPTIONS
maxRoomIds: MAX_ROOM_IDS
writeBudgetBytesPerSecond: SOCKET_WRITE_BYTES_PER_SECOND
writeBurstBytes: SOCKET_WRITE_BURST_BYTES
inboxMaxBytes: INBOX_MAX_BYTES
recoveryMaxMissed: RECOVERY_MAX_MISSED
heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS
presenceGraceMs: PRESENCE_GRACE_MS
shutdownDelayMs: SHUTDOWN_DELAY_MS
drainTimeoutMs: DRAIN_TIMEOUT_MS
inboxMaxLen: INBOX_MAX_LEN
inboxMaxAgeMs: INBOX_MAX_AGE_MS
idempotencyWindowMs: IDEMPOTENCY_WINDOW_MS
httpHeadersTimeoutMs: HTTP_HEADERS_TIMEOUT_MS
httpRequestTimeoutMs: HTTP_REQUEST_TIMEOUT_MS
httpMaxConnections: HTTP_MAX_CONNECTIONS
corsOrigins: CORS_ORIGINS
transports: TRANSPORTS
maxHttpBufferSize: MAX_HTTP_BUFFER_SIZE
rateLimitPerSecond: RATE_LIMIT_EVENTS_PER_SECOND
rateLimitBurst: RATE_LIMIT_BURST
connectRatePerSecond: CONNECT_RATE_LIMIT_PER_SECOND
trustProxyHops: TRUST_PROXY_HOPS
maxConnections: MAX_CONNECTIONS
outboundSoftBytes: OUTBOUND_BUFFER_SOFT_BYTES
outboundMaxBytes: OUTBOUND_BUFFER_MAX_BYTES
demoPage: DEMO_PAGE
devLogin: DEV_LOGIN
forwardMaxConnections: FORWARD_MAX_CONNECTIONS
forwardConnectTimeoutMs: FORWARD_CONNECT_TIMEOUT_MS
forwardTimeoutMs: FORWARD_TIMEOUT_MS
drainSpreadPercent: DRAIN_SPREAD_PERCENT
rebalanceEnabled: REBALANCE_ENABLED
rebalanceTolerancePercent: REBALANCE_TOLERANCE_PERCENT
rebalanceRatePercent: REBALANCE_RATE_PERCENT
workerConcurrency: WORKER_CONCURRENCY
workerVisibilityTimeoutMs: WORKER_VISIBILITY_TIMEOUT_MS
workerMaxAttempts: WORKER_MAX_ATTEMPTS
{{- end }}

{{/* Plain (non-secret) variables of a component, as ConfigMap data: (dict "root" $ "component" "gateway"). */}}
{{- define "realtime-gateway.configData" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $names := include "realtime-gateway.envNames" $root | fromYaml }}
{{- $data := dict "PORT" (toString (int $v.ports.http)) "METRICS_PORT" (toString (int $v.ports.metrics)) }}
{{- $settings := merge (dict) (index $v .component).config $v.config }}
{{- range $key, $val := $settings }}
{{- $env := index $names $key | default "" }}
{{- if not $env }}{{ fail (printf "internal: no environment variable known for setting %q (add it to realtime-gateway.envNames)" $key) }}{{ end }}
{{- if not (include "realtime-gateway.isUnset" $val) }}
{{- $_ := set $data $env (include "realtime-gateway.envValue" $val) }}
{{- end }}
{{- end }}
{{- if $v.redis.bundled.enabled }}
{{- $_ := set $data "REDIS_URL" (printf "redis://%s:6379" (include "realtime-gateway.redisName" $root)) }}
{{- end }}
{{- $_ := set $data "REDIS_CLUSTER" (include "realtime-gateway.envValue" $v.redis.external.cluster) }}
{{- if eq .component "gateway" }}
{{- with include "realtime-gateway.affinityCookie" $root }}
{{- $_ := set $data "REBALANCE_AFFINITY_COOKIE" . }}
{{- end }}
{{- $jwt := $v.auth.jwt }}
{{- $_ := set $data "AUTH_MODE" (ternary "insecure" "jwt" $v.auth.insecure) }}
{{- if not $v.auth.insecure }}
{{- $_ := set $data "JWT_REQUIRE_EXP" (include "realtime-gateway.envValue" $jwt.requireExp) }}
{{- if $jwt.issuer }}{{ $_ := set $data "JWT_ISSUER" $jwt.issuer }}{{ end }}
{{- if $jwt.audience }}{{ $_ := set $data "JWT_AUDIENCE" $jwt.audience }}{{ end }}
{{- if and (eq $jwt.verification "publicKey") $jwt.publicKey }}{{ $_ := set $data "JWT_PUBLIC_KEY" $jwt.publicKey }}{{ end }}
{{- if and (eq $jwt.verification "jwks") $jwt.jwksUrl }}{{ $_ := set $data "JWT_JWKS_URL" $jwt.jwksUrl }}{{ end }}
{{- end }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
The affinity cookie the chart's router sets, if any (REBALANCE_AFFINITY_COOKIE): a rebalancing
gateway expires it for the clients it moves, so the router picks another pod for them.
*/}}
{{- define "realtime-gateway.affinityCookie" -}}
{{- $v := .Values }}
{{- if and $v.ingress.enabled $v.ingress.stickySessions }}{{ $v.ingress.nginx.affinity.cookieName }}
{{- else if and $v.httpRoute.enabled $v.httpRoute.sessionPersistence.enabled }}{{ $v.httpRoute.sessionPersistence.sessionName }}
{{- end }}
{{- end }}

{{/* Data of the chart-made Secret (inline values only); empty when there are none. */}}
{{- define "realtime-gateway.secretData" -}}
{{- $v := .Values }}
{{- $data := dict }}
{{- if $v.redis.external.url }}{{ $_ := set $data "redis-url" $v.redis.external.url }}{{ end }}
{{- if and (not $v.auth.insecure) $v.auth.jwt.devSecret }}{{ $_ := set $data "jwt-secret" $v.auth.jwt.devSecret }}{{ end }}
{{- if $v.apiKeys.devKeys }}{{ $_ := set $data "api-keys" (join "," $v.apiKeys.devKeys) }}{{ end }}
{{- if $data }}{{ toYaml $data }}{{ end }}
{{- end }}

{{/* Variables taken from Secrets, as a container `env` list: (dict "root" $ "component" "gateway"). */}}
{{- define "realtime-gateway.secretEnv" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $own := include "realtime-gateway.envSecretName" $root }}
{{- $refs := list }}
{{- if $v.redis.external.url }}
{{- $refs = append $refs (list "REDIS_URL" $own "redis-url") }}
{{- else if $v.redis.external.existingSecret }}
{{- $refs = append $refs (list "REDIS_URL" $v.redis.external.existingSecret $v.redis.external.existingSecretKey) }}
{{- end }}
{{- if and (eq .component "gateway") (not $v.auth.insecure) }}
{{- $jwt := $v.auth.jwt }}
{{- $var := get (dict "secret" "JWT_SECRET" "publicKey" "JWT_PUBLIC_KEY" "jwks" "JWT_JWKS_URL") $jwt.verification }}
{{- $defaultKey := get (dict "secret" "jwt-secret" "publicKey" "jwt-public-key" "jwks" "jwks-url") $jwt.verification }}
{{- if and (eq $jwt.verification "secret") $jwt.devSecret }}
{{- $refs = append $refs (list "JWT_SECRET" $own "jwt-secret") }}
{{- else if not (or (and (eq $jwt.verification "publicKey") $jwt.publicKey) (and (eq $jwt.verification "jwks") $jwt.jwksUrl)) }}
{{- $refs = append $refs (list $var (default (include "realtime-gateway.componentName" (dict "root" $root "suffix" "auth")) $jwt.existingSecret) (default $defaultKey $jwt.existingSecretKey)) }}
{{- end }}
{{- end }}
{{- if $v.apiKeys.devKeys }}
{{- $refs = append $refs (list "API_KEYS" $own "api-keys") }}
{{- else if $v.apiKeys.existingSecret }}
{{- $refs = append $refs (list "API_KEYS" $v.apiKeys.existingSecret $v.apiKeys.existingSecretKey) }}
{{- end }}
{{- range $refs }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 }}
      key: {{ index . 2 }}
{{- end }}
{{- end }}

{{/* Checks of value combinations that the schema cannot express; each failure says what to change. */}}
{{- define "realtime-gateway.validate" -}}
{{- $v := .Values }}
{{- $r := $v.redis }}
{{- $redisSources := 0 }}
{{- if $r.bundled.enabled }}{{ $redisSources = add1 $redisSources }}{{ end }}
{{- if $r.external.url }}{{ $redisSources = add1 $redisSources }}{{ end }}
{{- if $r.external.existingSecret }}{{ $redisSources = add1 $redisSources }}{{ end }}
{{- if ne (int $redisSources) 1 }}
{{- fail "redis: use exactly one of redis.bundled.enabled=true, redis.external.url or redis.external.existingSecret (set redis.bundled.enabled=false when using an external Redis)" }}
{{- end }}
{{- if and $r.bundled.enabled $r.external.cluster }}
{{- fail "redis.external.cluster=true needs an external Redis Cluster: the bundled Redis is a single node" }}
{{- end }}
{{- $jwt := $v.auth.jwt }}
{{- if not $v.auth.insecure }}
{{- if and $jwt.devSecret (ne $jwt.verification "secret") }}
{{- fail "auth.jwt.devSecret is an HS256 secret: it needs auth.jwt.verification=secret" }}
{{- end }}
{{- if and $jwt.publicKey (ne $jwt.verification "publicKey") }}
{{- fail "auth.jwt.publicKey is set but auth.jwt.verification is not publicKey" }}
{{- end }}
{{- if and $jwt.jwksUrl (ne $jwt.verification "jwks") }}
{{- fail "auth.jwt.jwksUrl is set but auth.jwt.verification is not jwks" }}
{{- end }}
{{- if and $jwt.existingSecret (or $jwt.devSecret $jwt.publicKey $jwt.jwksUrl) }}
{{- fail "auth.jwt: use either existingSecret or one inline value (devSecret, publicKey, jwksUrl), not both" }}
{{- end }}
{{- if and $jwt.devSecret (lt (len $jwt.devSecret) 32) }}
{{- fail "auth.jwt.devSecret must be at least 32 bytes long (JWT_SECRET)" }}
{{- end }}
{{- if and $jwt.jwksUrl (not (regexMatch "^https?://" $jwt.jwksUrl)) }}
{{- fail (printf "auth.jwt.jwksUrl must be an http(s) URL, got %q" $jwt.jwksUrl) }}
{{- end }}
{{- end }}
{{- if and $v.gateway.config.devLogin (not $v.auth.insecure) (ne $jwt.verification "secret") }}
{{- fail "gateway.config.devLogin=true needs auth.jwt.verification=secret (DEV_LOGIN signs with JWT_SECRET) or auth.insecure=true" }}
{{- end }}
{{- if and $v.apiKeys.devKeys $v.apiKeys.existingSecret }}
{{- fail "apiKeys: use either existingSecret or devKeys, not both" }}
{{- end }}
{{- range $v.apiKeys.devKeys }}
{{- if lt (len .) 16 }}{{ fail "every apiKeys.devKeys entry must be at least 16 characters long (API_KEYS)" }}{{ end }}
{{- end }}
{{- if eq (int $v.ports.http) (int $v.ports.metrics) }}
{{- fail "ports.metrics must differ from ports.http (METRICS_PORT must differ from PORT)" }}
{{- end }}
{{- if gt (int64 $v.gateway.config.forwardConnectTimeoutMs) (int64 $v.gateway.config.forwardTimeoutMs) }}
{{- fail "gateway.config.forwardConnectTimeoutMs must not exceed gateway.config.forwardTimeoutMs (FORWARD_CONNECT_TIMEOUT_MS <= FORWARD_TIMEOUT_MS)" }}
{{- end }}
{{- if gt (int64 $v.config.httpHeadersTimeoutMs) (int64 $v.config.httpRequestTimeoutMs) }}
{{- fail "config.httpHeadersTimeoutMs must not exceed config.httpRequestTimeoutMs (HTTP_HEADERS_TIMEOUT_MS <= HTTP_REQUEST_TIMEOUT_MS)" }}
{{- end }}
{{- if gt (int64 $v.gateway.config.outboundSoftBytes) (int64 $v.gateway.config.outboundMaxBytes) }}
{{- fail "gateway.config.outboundSoftBytes must not exceed gateway.config.outboundMaxBytes" }}
{{- end }}
{{- range $c := list "gateway" "worker" }}
{{- $a := (index $v $c).autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas must not exceed %s.autoscaling.maxReplicas" $c $c) }}
{{- end }}
{{- end }}
{{- $g := $v.gateway.autoscaling }}
{{- if and $g.enabled (not $g.targetCPUUtilizationPercentage) (not $g.connectionsPerPod.enabled) }}
{{- fail "gateway.autoscaling needs a metric: set targetCPUUtilizationPercentage or connectionsPerPod.enabled=true" }}
{{- end }}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled=true needs httpRoute.parentRefs (the Gateway to attach to)" }}
{{- end }}
{{- $sp := $v.httpRoute.sessionPersistence }}
{{- if and $v.ingress.enabled $v.ingress.stickySessions $v.httpRoute.enabled $sp.enabled (ne $v.ingress.nginx.affinity.cookieName $sp.sessionName) }}
{{- fail (printf "ingress.nginx.affinity.cookieName (%q) and httpRoute.sessionPersistence.sessionName (%q) must be the same cookie when both routers are sticky: a rebalancing gateway expires one affinity cookie (REBALANCE_AFFINITY_COOKIE)" $v.ingress.nginx.affinity.cookieName $sp.sessionName) }}
{{- end }}
{{- if and $v.httpRoute.enabled $sp.enabled (eq $sp.cookieLifetimeType "Permanent") (not $sp.absoluteTimeout) }}
{{- fail "httpRoute.sessionPersistence.cookieLifetimeType=Permanent needs absoluteTimeout" }}
{{- end }}
{{- end }}
