import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ERROR_CODES } from './errors';

/** Why a restore gave a fresh session (mirrors adapter/restore.ts; labels start at zero). */
export const REFUSED_REASONS = [
  'bad_offset',
  'expired',
  'no_session',
  'other_user',
  'trimmed',
  'too_many_read',
  'too_many_missed',
  'unavailable',
] as const;

/** How a request for another pod's Engine.IO session ended (services/gateway/forwarding.ts). */
export const FORWARD_OUTCOMES = ['ok', 'no_owner', 'loop', 'unreachable', 'timeout', 'overloaded', 'unavailable', 'aborted'] as const;

/** Metric name prefix: `<namespace>_<subsystem>_<name>`. */
export const NS = 'realtime';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Registers = Registry[];

function counter<T extends string = never>(registers: Registers, name: string, help: string, labelNames: readonly T[] = []) {
  return new Counter<T>({ name: `${NS}_${name}`, help, labelNames, registers });
}
function gauge<T extends string = never>(registers: Registers, name: string, help: string, labelNames: readonly T[] = []) {
  return new Gauge<T>({ name: `${NS}_${name}`, help, labelNames, registers });
}
function histogram<T extends string = never>(registers: Registers, name: string, help: string, labelNames: readonly T[] = []) {
  return new Histogram<T>({ name: `${NS}_${name}`, help, labelNames, buckets: LATENCY_BUCKETS, registers });
}

/** The gateway's own metrics: connections, events, delivery, backpressure, recovery. */
/** A counter counted in a plain number on the hot path (`pending[key]`), folded in at scrape time. */
function tally<K extends string>(r: Registers, name: string, help: string, pending: Record<K, number>, key: K) {
  return new Counter({
    name: `${NS}_${name}`,
    help,
    registers: r,
    collect() {
      if (pending[key]) {
        this.inc(pending[key]);
        pending[key] = 0;
      }
    },
  });
}

function gatewayMetrics(r: Registers, pending: Pending) {
  return {
    connections: gauge(r, 'gateway_connections', 'Connected sockets on this pod', ['nsp'] as const),
    connects: counter(r, 'gateway_connects_total', 'Accepted socket connections', ['nsp', 'recovered'] as const),
    disconnects: counter(r, 'gateway_disconnects_total', 'Socket disconnections by reason', ['nsp', 'reason'] as const),
    authFailures: counter(r, 'gateway_auth_failures_total', 'Refused handshakes by reason', ['reason'] as const),
    eventsReceived: counter(r, 'gateway_events_received_total', 'Client events by event name and outcome (ok or an error code)', [
      'event',
      'outcome',
    ] as const),
    requestErrors: counter(
      r,
      'gateway_request_errors_total',
      'Refusals of events sent without an ack, answered as request-error, by code',
      ['code'] as const,
    ),
    errors: counter(r, 'gateway_errors_total', 'Error answers by code', ['code'] as const),
    rateLimited: counter(r, 'gateway_rate_limited_total', 'Events or handshakes refused by a rate limit', ['scope'] as const),
    eventDuration: histogram(r, 'gateway_event_duration_seconds', 'Time to answer a client event', ['event'] as const),
    messagesPublished: counter(r, 'gateway_messages_published_total', 'Messages accepted from clients, by kind', ['kind'] as const),
    deliveryLatency: histogram(
      r,
      'gateway_delivery_latency_seconds',
      'From message timestamp (emit or publish) to socket write on this pod',
      ['kind'] as const,
    ),
    slowConsumerDrops: counter(
      r,
      'gateway_slow_consumer_drops_total',
      'Volatile packets dropped because the socket buffer was above the soft mark',
    ),
    slowConsumerDisconnects: counter(r, 'gateway_slow_consumer_disconnects_total', 'Sockets cut because their buffer passed the hard mark'),
    volatileDrops: counter(r, 'gateway_volatile_drops_total', 'Volatile packets dropped because the transport was not writable'),
    recoveryAttempts: counter(r, 'gateway_recovery_attempts_total', 'Connections that asked for state recovery'),
    recoverySuccesses: counter(r, 'gateway_recovery_successes_total', 'Connections whose state was recovered'),
    sessionsPersisted: counter(r, 'gateway_sessions_persisted_total', 'Recovery sessions written ahead of a disconnect'),
    packetsSent: tally(r, 'gateway_packets_sent_total', 'Packets written to sockets (after fan-out)', pending, 'packetsSent'),
    adapterReceived: tally(
      r,
      'adapter_entries_received_total',
      'Room broadcasts this pod received live (only rooms it has members in)',
      pending,
      'adapterReceived',
    ),
    adapterSkipped: tally(
      r,
      'adapter_entries_skipped_total',
      'Room broadcasts received with no local recipient (the member left meanwhile)',
      pending,
      'adapterSkipped',
    ),
    limitExceeded: counter(r, 'gateway_limit_exceeded_total', 'Requests refused limit_exceeded by a per-socket cap, by cap', [
      'limit',
    ] as const),
    recoveryRefused: counter(r, 'gateway_recovery_refused_total', 'Recoveries answered with a fresh session, by reason', [
      'reason',
    ] as const),
    recoveryEntriesRead: counter(r, 'gateway_recovery_entries_read_total', 'Room history entries read by session restores'),
    forwardedRequests: counter(
      r,
      'gateway_forwarded_requests_total',
      'Engine.IO requests whose session another pod holds, by kind (polling, websocket) and outcome (ok: forwarded to the owner)',
      ['kind', 'outcome'] as const,
    ),
    forwardedConnections: gauge(r, 'gateway_forwarded_connections', 'Forwarded requests and websocket tunnels open on this pod now'),
    rebalanceCloses: counter(
      r,
      'gateway_rebalance_closes_total',
      'Connections this pod closed (recoverably) to move them to pods below the fair share',
    ),
    rebalanceAffinityRefusals: counter(
      r,
      'gateway_rebalance_affinity_refusals_total',
      'Handshakes carrying the affinity cookie that a shedding pod answered 503 with the cookie expired (REBALANCE_AFFINITY_COOKIE)',
    ),
    rebalanceSteered: counter(
      r,
      'gateway_rebalance_steered_handshakes_total',
      'New sessions whose handshake reached this pod while it was above its fair share and that it started on a pod below it (forwarded)',
    ),
    rebalanceFairShare: gauge(r, 'gateway_rebalance_fair_share', "Connections per pod if the cluster's were even, as this pod sees it"),
    rebalanceShedding: gauge(r, 'gateway_rebalance_shedding', '1 while this pod moves connections to others (above its fair share)'),
  };
}

/** Metrics of both services: Redis, readiness, background tasks, presence. */
function sharedMetrics(r: Registers) {
  return {
    redisErrors: counter(r, 'redis_errors_total', 'Redis command or connection errors', ['op'] as const),
    redisUp: gauge(r, 'redis_up', '1 when the Redis connection is ready'),
    taskFailures: counter(r, 'process_task_failures_total', 'Background task runs that failed (retried next period), by task', [
      'task',
    ] as const),
    ready: gauge(r, 'process_ready', '1 when /readyz answers 200'),
    heartbeatAge: gauge(r, 'presence_heartbeat_age_seconds', 'Age of the oldest live pod heartbeat seen by this process'),
    presenceTransitions: counter(r, 'presence_transitions_total', 'Presence transitions announced, by kind', ['kind'] as const),
    reapedSockets: counter(r, 'presence_reaped_sockets_total', 'Sockets removed because their pod stopped heartbeating'),
    onlineUsers: gauge(r, 'presence_online_users', 'Users with at least one connected socket (all pods)'),
    httpConnectionsClosed: counter(
      r,
      'http_connections_closed_total',
      'HTTP connections the server closed on its own, by reason (max_connections, timeout, malformed)',
      ['reason'] as const,
    ),
  };
}

/** The delivery pipeline: outbox, inboxes, adapter stream, publish API. */
function pipelineMetrics(r: Registers) {
  return {
    deliveries: counter(r, 'outbox_deliveries_total', 'Backend publishes delivered, by target kind (all, rooms, user)', [
      'target',
    ] as const),
    deliveryFailures: counter(r, 'outbox_delivery_failures_total', 'Outbox delivery attempts that failed (retried later)'),
    deadLetters: counter(r, 'outbox_dead_letters_total', 'Outbox entries moved to the dead-letter stream'),
    outboxLength: gauge(r, 'outbox_length', 'Entries in the outbox stream (undelivered or in flight)'),
    outboxLag: gauge(r, 'outbox_lag', 'Entries not yet read by the consumer group'),
    outboxPending: gauge(r, 'outbox_pending', 'Entries read but not yet acknowledged'),
    outboxOldestPendingAge: gauge(r, 'outbox_oldest_pending_age_seconds', 'Age of the oldest unacknowledged entry'),
    deadLetterLength: gauge(r, 'outbox_dead_letter_length', 'Entries in the dead-letter stream'),
    inboxAppends: counter(r, 'inbox_appends_total', 'Messages appended to inboxes, by kind (direct, publish)', ['kind'] as const),
    inboxReplays: counter(r, 'inbox_replays_total', 'Inbox replays started on connect'),
    inboxReplayed: counter(r, 'inbox_replayed_messages_total', 'Messages sent in queued-messages batches'),
    retentionTrims: counter(r, 'inbox_retention_trimmed_total', 'Inbox messages removed by age retention'),
    adapterReadLag: histogram(r, 'adapter_read_lag_seconds', 'Time from a broadcast entering Redis to this pod receiving it live'),
    adapterGapFills: counter(
      r,
      'adapter_gap_fills_total',
      'Live feeds of a shard refilled from the room histories after their connection broke',
    ),
    adapterFloors: counter(
      r,
      'adapter_floors_total',
      'Positions a join or restore started from, by how they were known: from the live feed (known) or by a barrier round trip to Redis',
      ['how'] as const,
    ),
    inboxDepth: gauge(r, 'inbox_depth', 'Messages held in all inboxes (measured by the retention pass)'),
    inboxStreams: gauge(r, 'inbox_streams', 'Inbox streams (users with messages kept)'),
    publishRequests: counter(
      r,
      'api_publish_requests_total',
      'Publish API requests by HTTP status (408: the body stalled, 499: the client aborted mid-body)',
      ['status'] as const,
    ),
  };
}

type Pending = { packetsSent: number; adapterReceived: number; adapterSkipped: number };

/**
 * How often the event-loop delay is sampled (prom-client's `nodejs_eventloop_lag_*`). Its default,
 * 10 ms, is a timer that wakes every process 100 times a second with nothing to do: an idle
 * gateway spent 11 ms of CPU per second on it on a VM (a pod-fixed cost, paid whatever its
 * audience). A delay is recorded as the timer's lateness, so a stall of any length still shows
 * in the p99 and max; 20 samples a second are plenty for the 200 ms alert.
 */
export const EVENT_LOOP_SAMPLE_MS = 50;

/** Creates every metric on `registry` (inject a fresh one per test). */
export function createMetrics(registry: Registry = new Registry(), opts: { defaults?: boolean } = {}) {
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const r = [registry];
  /** Hot-path tallies folded into their metrics at scrape time. */
  const pending = { packetsSent: 0, adapterReceived: 0, adapterSkipped: 0 };
  const m = { pending, registry, ...gatewayMetrics(r, pending), ...sharedMetrics(r), ...pipelineMetrics(r) };
  zeroLabelledCounters(m);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Labelled counters start at zero so the first increment after a start shows in rate()/increase(). */
function zeroLabelledCounters(m: Omit<Metrics, 'pending' | 'registry'>): void {
  for (const code of ERROR_CODES) m.errors.inc({ code }, 0);
  for (const scope of ['event', 'connect', 'bytes']) m.rateLimited.inc({ scope }, 0);
  for (const limit of ['rooms', 'presence_subscriptions', 'room_ids']) m.limitExceeded.inc({ limit }, 0);
  for (const code of ERROR_CODES) m.requestErrors.inc({ code }, 0);
  for (const reason of [
    'missing_credentials',
    'invalid_token',
    'expired',
    'bad_claims',
    'jwks_unavailable',
    'workspace',
    'role',
    'namespace',
    'rate_limited',
    'overloaded',
    'error',
  ])
    m.authFailures.inc({ reason }, 0);
  for (const reason of REFUSED_REASONS) m.recoveryRefused.inc({ reason }, 0);
  for (const op of ['connection', 'heartbeat', 'persist_session', 'adapter_publish', 'adapter_link', 'inbox_replay', 'outbox_read', 'reap'])
    m.redisErrors.inc({ op }, 0);
  for (const target of ['all', 'rooms', 'user']) m.deliveries.inc({ target }, 0);
  for (const kind of ['direct', 'publish']) m.inboxAppends.inc({ kind }, 0);
  for (const kind of ['online', 'offline']) m.presenceTransitions.inc({ kind }, 0);
  for (const kind of ['room', 'direct']) m.messagesPublished.inc({ kind }, 0);
  for (const status of ['202', '400', '401', '405', '408', '413', '499', '503']) m.publishRequests.inc({ status }, 0);
  for (const reason of ['max_connections', 'timeout', 'malformed']) m.httpConnectionsClosed.inc({ reason }, 0);
  for (const kind of ['polling', 'websocket']) for (const outcome of FORWARD_OUTCOMES) m.forwardedRequests.inc({ kind, outcome }, 0);
}
/** Low-cardinality label for a namespace name (workspace ids never become labels). */
export function nsLabel(name: string): string {
  if (name === '/' || name === '/admin') return name;
  return 'workspace';
}
