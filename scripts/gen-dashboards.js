// Generates grafana/dashboards/{overview,delivery,runtime}.json (run: node gen-dashboards.js <repo>).
const fs = require('fs');
const path = require('path');

const repo = process.argv[2] || path.resolve(__dirname, '..');
const DS = { type: 'prometheus', uid: '${datasource}' };
const S = 'namespace=~"$namespace", pod=~"$pod"';
const sel = (extra) => `{${S}${extra ? ', ' + extra : ''}}`;
const RI = '$__rate_interval';
const rate = (m, extra) => `rate(${m}${sel(extra)}[${RI}])`;

let nextId = 1;
let y = 0;
let x = 0;
let rowH = 0;

function place(w, h) {
  if (x + w > 24) {
    x = 0;
    y += rowH;
    rowH = 0;
  }
  const g = { h, w, x, y };
  x += w;
  rowH = Math.max(rowH, h);
  return g;
}

function row(title) {
  if (x > 0) {
    y += rowH;
    x = 0;
    rowH = 0;
  }
  const p = { type: 'row', id: nextId++, title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] };
  y += 1;
  return p;
}

function targets(list) {
  return list.map(([expr, legendFormat], i) => ({
    refId: String.fromCharCode(65 + i),
    datasource: DS,
    editorMode: 'code',
    expr,
    legendFormat: legendFormat ?? '__auto',
    range: true,
  }));
}

/** A time series panel. opts: unit, w, h, min, max, stack, decimals. */
function ts(title, description, unit, list, opts = {}) {
  return {
    type: 'timeseries',
    id: nextId++,
    title,
    description,
    datasource: DS,
    gridPos: place(opts.w ?? 8, opts.h ?? 8),
    fieldConfig: {
      defaults: {
        unit,
        min: opts.min ?? 0,
        ...(opts.max !== undefined ? { max: opts.max } : {}),
        ...(opts.decimals !== undefined ? { decimals: opts.decimals } : {}),
        color: { mode: 'palette-classic' },
        custom: {
          drawStyle: 'line',
          lineInterpolation: 'linear',
          lineWidth: 1,
          fillOpacity: opts.stack ? 30 : 10,
          showPoints: 'never',
          spanNulls: false,
          stacking: { mode: opts.stack ? 'normal' : 'none', group: 'A' },
          axisPlacement: 'auto',
        },
        thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
      },
      overrides: [],
    },
    options: {
      legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['lastNotNull', 'max'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
    targets: targets(list),
  };
}

/** A stat panel. */
function stat(title, description, unit, list, opts = {}) {
  return {
    type: 'stat',
    id: nextId++,
    title,
    description,
    datasource: DS,
    gridPos: place(opts.w ?? 4, opts.h ?? 8),
    fieldConfig: {
      defaults: {
        unit,
        ...(opts.decimals !== undefined ? { decimals: opts.decimals } : {}),
        color: { mode: 'thresholds' },
        thresholds: { mode: 'absolute', steps: opts.steps ?? [{ color: 'green', value: null }] },
        mappings: [],
      },
      overrides: [],
    },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'area',
      justifyMode: 'auto',
      orientation: 'auto',
      textMode: 'auto',
    },
    targets: targets(list),
  };
}

function variables() {
  const q = (name, label, query) => ({
    name,
    label,
    type: 'query',
    datasource: DS,
    definition: query,
    query: { qryType: 1, query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    includeAll: true,
    multi: true,
    // No custom "All" value: Grafana sends the alternation of the values found, so `All` means
    // every pod of this project (other Node.js services' `nodejs_*` series stay out).
    current: {},
    options: [],
    regex: '',
    sort: 1,
    hide: 0,
    skipUrlSync: false,
  });
  return {
    list: [
      {
        name: 'datasource',
        label: 'Data source',
        type: 'datasource',
        query: 'prometheus',
        current: {},
        options: [],
        refresh: 1,
        regex: '',
        hide: 0,
        includeAll: false,
        multi: false,
        skipUrlSync: false,
      },
      q('namespace', 'Namespace', 'label_values(realtime_process_ready, namespace)'),
      q('pod', 'Pod', 'label_values(realtime_process_ready{namespace=~"$namespace"}, pod)'),
    ],
  };
}

function dashboard(uid, title, description, panels) {
  return {
    id: null,
    uid,
    title,
    description,
    tags: ['realtime-gateway'],
    timezone: 'browser',
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    timepicker: {},
    fiscalYearStartMonth: 0,
    liveNow: false,
    weekStart: '',
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    links: [
      {
        type: 'dashboards',
        title: 'Realtime gateway',
        tags: ['realtime-gateway'],
        asDropdown: true,
        includeVars: true,
        keepTime: true,
        icon: 'external link',
        targetBlank: false,
        tooltip: '',
        url: '',
      },
    ],
    templating: variables(),
    panels,
  };
}

function reset() {
  nextId = 1;
  y = 0;
  x = 0;
  rowH = 0;
}

// ---------------------------------------------------------------- overview
reset();
const overview = dashboard(
  'rtg-overview',
  'Realtime gateway / Overview',
  'Traffic, latency, errors and saturation of the realtime gateway (Socket.IO + Redis): the first dashboard to open.',
  [
    row('Traffic'),
    ts(
      'Connections by Socket.IO namespace',
      'Connected sockets (realtime_gateway_connections), summed over the selected gateway pods, by Socket.IO namespace: `/`, `/admin`, or `workspace` for every workspace namespace. The label is exposed as `namespace` and renamed `nsp` by the scrape (it collides with the Kubernetes namespace).',
      'short',
      [[`sum by (nsp) (realtime_gateway_connections${sel()})`, '{{nsp}}']],
    ),
    ts(
      'Connections per pod',
      'Connected sockets per gateway pod: an uneven spread points at the ingress affinity or at a pod that was just added.',
      'short',
      [[`sum by (pod) (realtime_gateway_connections${sel()})`, '{{pod}}']],
    ),
    stat(
      'Online users',
      'Users with at least one connected socket on any pod (all Socket.IO namespaces), as counted by the workers from Redis presence.',
      'short',
      [[`sum(max by (namespace) (realtime_presence_online_users${sel()}))`, 'online']],
    ),
    stat(
      'Ready pods',
      'Gateway and worker processes whose /readyz answers 200 (realtime_process_ready).',
      'short',
      [[`sum(realtime_process_ready${sel()})`, 'ready']],
      {
        steps: [
          { color: 'red', value: null },
          { color: 'green', value: 1 },
        ],
      },
    ),
    ts(
      'Connects by namespace and recovery',
      'Accepted connections per second by Socket.IO namespace; `recovered="true"` are reconnects whose session (rooms, missed messages) was restored.',
      'cps',
      [[`sum by (nsp, recovered) (${rate('realtime_gateway_connects_total')})`, '{{nsp}} recovered={{recovered}}']],
      { w: 12 },
    ),
    ts(
      'Disconnects by reason',
      'Socket disconnections per second by Socket.IO reason (`transport close`, `client namespace disconnect`, `ping timeout`, `server shutting down`, ...). A burst of `transport close` at once means a pod or the ingress dropped connections.',
      'cps',
      [[`sum by (reason) (${rate('realtime_gateway_disconnects_total')})`, '{{reason}}']],
      { w: 12 },
    ),
    ts(
      'Client events by event and outcome',
      'Client events per second by event name and outcome: `ok`, an error code (`bad_request`, `forbidden`, `rate_limited`, `unavailable`, ...), or `no_ack`. Unknown event names are counted as `unknown`.',
      'eps',
      [[`sum by (event, outcome) (${rate('realtime_gateway_events_received_total')})`, '{{event}} {{outcome}}']],
      { w: 12 },
    ),
    ts(
      'Messages published by kind',
      'Messages accepted from clients per second: `room` messages and `direct` messages.',
      'mps',
      [[`sum by (kind) (${rate('realtime_gateway_messages_published_total')})`, '{{kind}}']],
      { w: 12 },
    ),
    ts(
      'Packets sent per pod',
      'Packets written to sockets per second after fan-out (one room message to 1000 members is 1000 packets).',
      'pps',
      [[`sum by (pod) (${rate('realtime_gateway_packets_sent_total')})`, '{{pod}}']],
      { w: 12 },
    ),
    ts(
      'Publish API requests by status',
      'POST /api/v1/publish requests per second by HTTP status (202 accepted, 400 bad input, 401 bad key, 413 too large, 503 Redis down), gateways and workers.',
      'reqps',
      [[`sum by (status) (${rate('realtime_api_publish_requests_total')})`, '{{status}}']],
      { w: 12 },
    ),
    ts(
      'Forwarded Engine.IO requests by kind and outcome',
      'Long-polling requests and websocket upgrades that reached a gateway other than the one holding their Engine.IO session (no sticky sessions at the balancer, or an affinity cookie naming another pod), per second, by kind and outcome: `ok` forwarded to the owner; `no_owner` the session id names no live pod (answered 400, the client reconnects and recovers); `unreachable` / `timeout` the owner could not be reached or did not answer in FORWARD_TIMEOUT_MS (503); `overloaded` FORWARD_MAX_CONNECTIONS reached (503); `loop` a forwarded request for yet another pod (400, never forwarded twice); `unavailable` the pod registry could not be read; `aborted` the client went away. Cookie affinity at the ingress turns `ok` into zero (it saves the hop).',
      'reqps',
      [[`sum by (kind, outcome) (${rate('realtime_gateway_forwarded_requests_total')})`, '{{kind}} {{outcome}}']],
      { w: 12 },
    ),
    ts(
      'Rebalancing: connections per pod and the fair share',
      "Connected sockets per gateway pod against the fair share (realtime_gateway_rebalance_fair_share: the cluster's connections over the pods taking them, as the pods see it from the heartbeats). A pod more than REBALANCE_TOLERANCE_PERCENT above it, or one that far below it, makes the pods above it move connections (recoverable closes, at most REBALANCE_RATE_PERCENT per second) until they are down to it. A new pod staying flat at 0 while the others shed means the balancer does not route to it (rebalancing then pauses).",
      'short',
      [
        [`sum by (pod) (realtime_gateway_connections${sel()})`, '{{pod}}'],
        [`max(realtime_gateway_rebalance_fair_share${sel()})`, 'fair share'],
      ],
      { w: 12 },
    ),
    ts(
      'Rebalancing moves per pod',
      'Connections closed per second to move them to lighter pods (realtime_gateway_rebalance_closes_total), new sessions a pod above its fair share started on a lighter pod instead of itself (steered, forwarded), and handshakes carrying the affinity cookie turned away so the balancer picks another pod (REBALANCE_AFFINITY_COOKIE). Zero while the pods are within the tolerance of the fair share.',
      'cps',
      [
        [`sum by (pod) (${rate('realtime_gateway_rebalance_closes_total')})`, 'closes {{pod}}'],
        [`sum by (pod) (${rate('realtime_gateway_rebalance_steered_handshakes_total')})`, 'steered {{pod}}'],
        [`sum by (pod) (${rate('realtime_gateway_rebalance_affinity_refusals_total')})`, 'affinity refusals {{pod}}'],
      ],
      { w: 12 },
    ),
    row('Latency'),
    ts(
      'Event duration p50 / p99 by event',
      'Time to answer a client event (ack sent), from realtime_gateway_event_duration_seconds, by event name.',
      's',
      [
        [`histogram_quantile(0.5, sum by (le, event) (${rate('realtime_gateway_event_duration_seconds_bucket')}))`, 'p50 {{event}}'],
        [`histogram_quantile(0.99, sum by (le, event) (${rate('realtime_gateway_event_duration_seconds_bucket')}))`, 'p99 {{event}}'],
      ],
      { w: 12 },
    ),
    ts(
      'Delivery latency p50 / p99 by kind',
      'From a message timestamp (client emit or backend publish) to the socket write on the receiving pod, by kind (realtime_gateway_delivery_latency_seconds). Alert: RealtimeDeliveryLatencyHigh (p99 > 1 s for 10 min).',
      's',
      [
        [`histogram_quantile(0.5, sum by (le, kind) (${rate('realtime_gateway_delivery_latency_seconds_bucket')}))`, 'p50 {{kind}}'],
        [`histogram_quantile(0.99, sum by (le, kind) (${rate('realtime_gateway_delivery_latency_seconds_bucket')}))`, 'p99 {{kind}}'],
      ],
      { w: 12 },
    ),
    row('Errors'),
    ts(
      'Error answers by code',
      'Acks answered `{ ok: false }` per second by error code. `unavailable` means Redis is down; `internal` is a bug (the pod logs the stack).',
      'eps',
      [[`sum by (code) (${rate('realtime_gateway_errors_total')})`, '{{code}}']],
      { w: 6 },
    ),
    ts(
      'Refused handshakes by reason',
      'Connections refused per second by reason: `missing_credentials`, `invalid_token`, `expired`, `bad_claims`, `workspace`, `role`, `rate_limited`, `overloaded`, ...',
      'cps',
      [[`sum by (reason) (${rate('realtime_gateway_auth_failures_total')})`, '{{reason}}']],
      { w: 6 },
    ),
    ts(
      'Rate limited by scope',
      'Client events (`event`, per-socket token bucket), bytes a socket made the cluster write (`bytes`, SOCKET_WRITE_BYTES_PER_SECOND) and handshakes (`connect`, per client address) refused by a rate limit, per second.',
      'eps',
      [[`sum by (scope) (${rate('realtime_gateway_rate_limited_total')})`, '{{scope}}']],
      { w: 6 },
    ),
    ts(
      'Per-socket caps reached',
      'Requests refused `limit_exceeded` per second by cap (`rooms`: MAX_ROOMS_PER_SOCKET, `presence_subscriptions`: MAX_PRESENCE_SUBSCRIPTIONS, `room_ids`: MAX_ROOM_IDS). A steady rate from few sockets is a client bug or an attack; see Security in README.md.',
      'eps',
      [[`sum by (limit) (${rate('realtime_gateway_limit_exceeded_total')})`, '{{limit}}']],
      { w: 6 },
    ),
    ts(
      'Refusals sent as request-error',
      'Refusals of client events sent without an ack (the seed client style), answered with a request-error event, per second, by error code.',
      'eps',
      [[`sum by (code) (${rate('realtime_gateway_request_errors_total')})`, '{{code}}']],
      { w: 6 },
    ),
    row('Saturation (per pod)'),
    ts(
      'CPU per pod',
      'CPU time used per second (1 = one full core), from prom-client process_cpu_seconds_total.',
      'percentunit',
      [[`sum by (pod) (${rate('process_cpu_seconds_total')})`, '{{pod}}']],
      { w: 6 },
    ),
    ts(
      'Resident memory per pod',
      'Resident set size of each process (process_resident_memory_bytes).',
      'bytes',
      [[`sum by (pod) (process_resident_memory_bytes${sel()})`, '{{pod}}']],
      { w: 6 },
    ),
    ts(
      'Event loop lag p99 per pod',
      'p99 event loop delay per process (prom-client nodejs_eventloop_lag_p99_seconds): every event, ack and heartbeat waits that long. Alert: RealtimeEventLoopLagHigh (> 200 ms for 5 min).',
      's',
      [[`max by (pod) (nodejs_eventloop_lag_p99_seconds${sel()})`, '{{pod}}']],
      { w: 6 },
    ),
    ts(
      'Slow consumers per pod',
      'Backpressure per second: volatile packets dropped above OUTBOUND_BUFFER_SOFT_BYTES, sockets cut above OUTBOUND_BUFFER_MAX_BYTES (they reconnect and recover), and volatile packets dropped because the transport was not writable.',
      'cps',
      [
        [`sum by (pod) (${rate('realtime_gateway_slow_consumer_drops_total')})`, '{{pod}} volatile dropped (soft mark)'],
        [`sum by (pod) (${rate('realtime_gateway_slow_consumer_disconnects_total')})`, '{{pod}} sockets cut (hard mark)'],
        [`sum by (pod) (${rate('realtime_gateway_volatile_drops_total')})`, '{{pod}} volatile dropped (not writable)'],
      ],
      { w: 6 },
    ),
  ],
);

// ---------------------------------------------------------------- delivery
reset();
const delivery = dashboard(
  'rtg-delivery',
  'Realtime gateway / Delivery and queues',
  'Backend publishes through the Redis outbox, dead letters, durable inboxes, connection state recovery and presence.',
  [
    row('Outbox (backend publishes)'),
    ts(
      'Outbox stream',
      'Entries in the outbox stream (undelivered or in flight), entries not yet read by the worker consumer group (lag) and entries read but not acknowledged (pending). Every worker reports the same cluster-wide values (max is shown). Alert: RealtimeOutboxLagGrowing.',
      'short',
      [
        [`max by (namespace) (realtime_outbox_length${sel()})`, '{{namespace}} length'],
        [`max by (namespace) (realtime_outbox_lag${sel()})`, '{{namespace}} lag (unread)'],
        [`max by (namespace) (realtime_outbox_pending${sel()})`, '{{namespace}} pending (unacked)'],
      ],
    ),
    ts(
      'Oldest pending entry age',
      'Age of the oldest read-but-unacknowledged outbox entry. Above WORKER_VISIBILITY_TIMEOUT_MS it is claimed by another worker; it keeps growing while deliveries fail.',
      's',
      [[`max by (namespace) (realtime_outbox_oldest_pending_age_seconds${sel()})`, '{{namespace}}']],
    ),
    ts(
      'Deliveries by target',
      'Backend publishes delivered per second by target kind: `all` (the whole namespace), `rooms`, `user` (inbox + live).',
      'ops',
      [[`sum by (target) (${rate('realtime_outbox_deliveries_total')})`, '{{target}}']],
    ),
    ts(
      'Delivery failures',
      'Outbox delivery attempts that failed per second, per worker; the entry stays pending and is retried after the visibility timeout.',
      'ops',
      [[`sum by (pod) (${rate('realtime_outbox_delivery_failures_total')})`, '{{pod}}']],
    ),
    ts(
      'Dead letters',
      'Outbox entries moved to the dead-letter stream after WORKER_MAX_ATTEMPTS failed deliveries, per interval: these publishes were not delivered. Alert: RealtimeOutboxDeadLetters.',
      'short',
      [[`sum by (namespace) (increase(realtime_outbox_dead_letters_total${sel()}[${RI}]))`, '{{namespace}}']],
      { decimals: 0 },
    ),
    stat(
      'Dead-letter stream length',
      'Entries in the dead-letter stream now (`XRANGE <prefix>:{outbox}:dead - +` lists them with their last error).',
      'short',
      [[`max by (namespace) (realtime_outbox_dead_letter_length${sel()})`, '{{namespace}}']],
      {
        w: 8,
        steps: [
          { color: 'green', value: null },
          { color: 'orange', value: 1 },
        ],
      },
    ),
    ts(
      'Publish API requests by status',
      'POST /api/v1/publish requests per second by HTTP status, on gateways and workers.',
      'reqps',
      [[`sum by (status) (${rate('realtime_api_publish_requests_total')})`, '{{status}}']],
      { w: 24 },
    ),
    row('Inbox (durable direct messages)'),
    ts(
      'Inbox appends by kind',
      'Messages appended to user inboxes per second by kind: `direct` (client direct messages) and `publish` (backend publishes to a user).',
      'ops',
      [[`sum by (kind) (${rate('realtime_inbox_appends_total')})`, '{{kind}}']],
    ),
    ts(
      'Inbox replays',
      'Inbox replays started on connect per second, and inbox messages sent in `queued-messages` batches per second.',
      'ops',
      [
        [`sum(${rate('realtime_inbox_replays_total')})`, 'replays started'],
        [`sum(${rate('realtime_inbox_replayed_messages_total')})`, 'messages replayed'],
      ],
    ),
    ts('Retention trims', 'Inbox messages removed per second because they passed INBOX_MAX_AGE_MS.', 'ops', [
      [`sum(${rate('realtime_inbox_retention_trimmed_total')})`, 'trimmed'],
    ]),
    ts(
      'Inbox depth',
      "Messages held in all inboxes and inbox streams (users with messages kept), measured by the worker's retention pass (cluster-wide: max over workers).",
      'short',
      [
        [`max by (namespace) (realtime_inbox_depth${sel()})`, '{{namespace}} messages'],
        [`max by (namespace) (realtime_inbox_streams${sel()})`, '{{namespace}} streams'],
      ],
      { w: 24 },
    ),
    row('Adapter (cross-pod broadcasts)'),
    ts(
      'Room broadcasts received',
      'Room broadcasts each pod received live (only rooms it has members in: a pod with no member of a room receives nothing for it), and those with no local recipient left when they arrived.',
      'ops',
      [
        [`sum by (pod) (${rate('realtime_adapter_entries_received_total')})`, 'received {{pod}}'],
        [`sum by (pod) (${rate('realtime_adapter_entries_skipped_total')})`, 'no recipient {{pod}}'],
      ],
      { w: 12 },
    ),
    ts(
      'Live feed gap fills',
      'Shards whose live feed (subscriber connection) broke and was refilled from the room histories, per pod: each one is a Redis connection lost and recovered without losing a message.',
      'short',
      [[`sum by (pod) (increase(realtime_adapter_gap_fills_total${sel()}[$__rate_interval]))`, '{{pod}}']],
      { w: 12 },
    ),
    ts(
      'Adapter read lag p50 / p99',
      'Time from a broadcast entering Redis to each pod receiving it live (realtime_adapter_read_lag_seconds): the cross-pod part of delivery latency.',
      's',
      [
        [`histogram_quantile(0.5, sum by (le, pod) (${rate('realtime_adapter_read_lag_seconds_bucket')}))`, 'p50 {{pod}}'],
        [`histogram_quantile(0.99, sum by (le, pod) (${rate('realtime_adapter_read_lag_seconds_bucket')}))`, 'p99 {{pod}}'],
      ],
      { w: 12 },
    ),
    row('Connection state recovery'),
    ts(
      'Recovery attempts vs successes',
      'Reconnections that asked for state recovery and those whose session (rooms, missed messages) was restored, per second. Attempts without success mean the session expired (RECOVERY_WINDOW_MS), a room history was trimmed, or a cap was reached: see the refusals by reason.',
      'cps',
      [
        [`sum(${rate('realtime_gateway_recovery_attempts_total')})`, 'attempts'],
        [`sum(${rate('realtime_gateway_recovery_successes_total')})`, 'successes'],
      ],
    ),
    stat(
      'Recovery success ratio',
      'Recovered / attempted over the selected range.',
      'percentunit',
      [
        [
          `sum(increase(realtime_gateway_recovery_successes_total${sel()}[$__range])) / sum(increase(realtime_gateway_recovery_attempts_total${sel()}[$__range]))`,
          'ratio',
        ],
      ],
      {
        w: 8,
        decimals: 1,
        steps: [
          { color: 'red', value: null },
          { color: 'orange', value: 0.9 },
          { color: 'green', value: 0.99 },
        ],
      },
    ),
    ts(
      'Sessions persisted',
      'Recovery sessions started in Redis per second, written when the socket connects (so that a killed pod loses none), and recoveries refused with a fresh session, by reason.',
      'ops',
      [
        [`sum by (pod) (${rate('realtime_gateway_sessions_persisted_total')})`, 'written {{pod}}'],
        [`sum by (reason) (${rate('realtime_gateway_recovery_refused_total')})`, 'refused: {{reason}}'],
      ],
    ),
    row('Presence'),
    ts(
      'Online users',
      'Users with at least one connected socket on any pod, all Socket.IO namespaces (workers count them from Redis).',
      'short',
      [[`max by (namespace) (realtime_presence_online_users${sel()})`, '{{namespace}}']],
    ),
    ts(
      'Presence transitions by kind',
      'Online/offline transitions announced per second (offline only after PRESENCE_GRACE_MS without sockets).',
      'ops',
      [[`sum by (kind) (${rate('realtime_presence_transitions_total')})`, '{{kind}}']],
    ),
    ts(
      'Reaped sockets',
      'Sockets removed per interval because their gateway pod stopped heartbeating (killed or cut off).',
      'short',
      [[`sum(increase(realtime_presence_reaped_sockets_total${sel()}[${RI}]))`, 'reaped']],
      { w: 4, decimals: 0 },
    ),
    ts(
      'Heartbeat age',
      'Age of the oldest live gateway heartbeat seen by each worker; a pod silent for 3 HEARTBEAT_INTERVAL_MS is reaped.',
      's',
      [[`max by (pod) (realtime_presence_heartbeat_age_seconds${sel()})`, '{{pod}}']],
      { w: 4 },
    ),
  ],
);

// ---------------------------------------------------------------- runtime
reset();
const runtime = dashboard(
  'rtg-runtime',
  'Realtime gateway / Runtime',
  'Node.js runtime (prom-client defaults), Redis connectivity and readiness of every gateway and worker process.',
  [
    row('Readiness and Redis'),
    ts(
      'Ready per pod',
      'realtime_process_ready: 1 when /readyz answers 200 (started, not draining, Redis reachable).',
      'bool_yes_no',
      [[`max by (pod) (realtime_process_ready${sel()})`, '{{pod}}']],
      { max: 1 },
    ),
    ts(
      'Redis up per pod',
      "realtime_redis_up: 1 when the pod's Redis command connection is ready. A single-node gateway on the in-memory engine reports 0. Alert: RealtimeRedisDown.",
      'bool_yes_no',
      [[`min by (pod) (realtime_redis_up${sel()})`, '{{pod}}']],
      { max: 1 },
    ),
    ts(
      'Redis errors by operation',
      'Redis command or connection errors per second by operation (`connection`, `heartbeat`, `outbox_read`, `adapter_publish`, `persist_session`, `inbox_replay`, `reap`). Alert: RealtimeRedisErrors.',
      'ops',
      [[`sum by (op) (${rate('realtime_redis_errors_total')})`, '{{op}}']],
    ),
    row('Node.js'),
    ts(
      'Event loop lag per pod',
      'Event loop delay percentiles per process since the previous scrape (prom-client). Alert: RealtimeEventLoopLagHigh (p99 > 200 ms for 5 min).',
      's',
      [
        [`max by (pod) (nodejs_eventloop_lag_p50_seconds${sel()})`, '{{pod}} p50'],
        [`max by (pod) (nodejs_eventloop_lag_p99_seconds${sel()})`, '{{pod}} p99'],
        [`max by (pod) (nodejs_eventloop_lag_max_seconds${sel()})`, '{{pod}} max'],
      ],
    ),
    ts('CPU per pod', 'CPU time used per second (1 = one full core), user and system.', 'percentunit', [
      [`sum by (pod) (${rate('process_cpu_seconds_total')})`, '{{pod}}'],
    ]),
    ts('Uptime per pod', 'Time since the process started: a reset to zero is a restart.', 's', [
      [`max by (pod) (time() - process_start_time_seconds${sel()})`, '{{pod}}'],
    ]),
    ts('Heap per pod', 'V8 heap used and total per process.', 'bytes', [
      [`sum by (pod) (nodejs_heap_size_used_bytes${sel()})`, '{{pod}} used'],
      [`sum by (pod) (nodejs_heap_size_total_bytes${sel()})`, '{{pod}} total'],
    ]),
    ts(
      'Resident and external memory per pod',
      'Resident set size (what the container memory limit counts) and memory of C++ objects bound to JavaScript (buffers).',
      'bytes',
      [
        [`sum by (pod) (process_resident_memory_bytes${sel()})`, '{{pod}} rss'],
        [`sum by (pod) (nodejs_external_memory_bytes${sel()})`, '{{pod}} external'],
      ],
    ),
    ts(
      'GC time per pod',
      'Fraction of wall time spent in garbage collection, by GC kind (minor, major, incremental, weakcb).',
      'percentunit',
      [[`sum by (pod, kind) (${rate('nodejs_gc_duration_seconds_sum')})`, '{{pod}} {{kind}}']],
    ),
    ts('GC runs per pod', 'Garbage collections per second by kind.', 'ops', [
      [`sum by (pod, kind) (${rate('nodejs_gc_duration_seconds_count')})`, '{{pod}} {{kind}}'],
    ]),
    ts(
      'Active handles and requests per pod',
      'libuv handles (sockets, timers, servers) and requests alive per process: handles grow with connections; a steady climb without connections is a leak.',
      'short',
      [
        [`sum by (pod) (nodejs_active_handles_total${sel()})`, '{{pod}} handles'],
        [`sum by (pod) (nodejs_active_requests_total${sel()})`, '{{pod}} requests'],
      ],
    ),
    ts('Open file descriptors per pod', 'Open file descriptors (one per socket, plus files) against the process limit.', 'short', [
      [`sum by (pod) (process_open_fds${sel()})`, '{{pod}} open'],
      [`sum by (pod) (process_max_fds${sel()})`, '{{pod}} max'],
    ]),
  ],
);

for (const [name, d] of Object.entries({ overview, delivery, runtime })) {
  fs.writeFileSync(path.join(repo, 'grafana/dashboards', `${name}.json`), JSON.stringify(d, null, 2) + '\n');
}
