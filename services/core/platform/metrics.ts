import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ERROR_CODES } from './errors';

/** Metric name prefix: `<namespace>_<subsystem>_<name>`. */
export const NS = 'realtime';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Creates every metric on `registry` (inject a fresh one per test). */
export function createMetrics(registry: Registry = new Registry(), opts: { defaults?: boolean } = {}) {
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry });
  const r = [registry];
  const pending = { packetsSent: 0 };
  const m = {
    /** Hot-path tallies folded into their metrics at scrape time. */
    pending,
    registry,
    // gateway: connections
    connections: new Gauge({ name: `${NS}_gateway_connections`, help: 'Connected sockets on this pod', labelNames: ['nsp'] as const, registers: r }),
    connects: new Counter({ name: `${NS}_gateway_connects_total`, help: 'Accepted socket connections', labelNames: ['nsp', 'recovered'] as const, registers: r }),
    disconnects: new Counter({ name: `${NS}_gateway_disconnects_total`, help: 'Socket disconnections by reason', labelNames: ['nsp', 'reason'] as const, registers: r }),
    authFailures: new Counter({ name: `${NS}_gateway_auth_failures_total`, help: 'Refused handshakes by reason', labelNames: ['reason'] as const, registers: r }),
    // gateway: events
    eventsReceived: new Counter({ name: `${NS}_gateway_events_received_total`, help: 'Client events by event name and outcome (ok or an error code)', labelNames: ['event', 'outcome'] as const, registers: r }),
    eventsDropped: new Counter({ name: `${NS}_gateway_events_dropped_total`, help: 'Client events dropped without an answer (no ack to answer on)', labelNames: ['reason'] as const, registers: r }),
    errors: new Counter({ name: `${NS}_gateway_errors_total`, help: 'Error answers by code', labelNames: ['code'] as const, registers: r }),
    rateLimited: new Counter({ name: `${NS}_gateway_rate_limited_total`, help: 'Events or handshakes refused by a rate limit', labelNames: ['scope'] as const, registers: r }),
    eventDuration: new Histogram({ name: `${NS}_gateway_event_duration_seconds`, help: 'Time to answer a client event', labelNames: ['event'] as const, buckets: LATENCY_BUCKETS, registers: r }),
    messagesPublished: new Counter({ name: `${NS}_gateway_messages_published_total`, help: 'Messages accepted from clients, by kind', labelNames: ['kind'] as const, registers: r }),
    packetsSent: new Counter({
      name: `${NS}_gateway_packets_sent_total`,
      help: 'Packets written to sockets (after fan-out)',
      registers: r,
      // Counted per socket write in a plain number (the hot path), folded in at scrape time.
      collect() {
        if (pending.packetsSent) {
          this.inc(pending.packetsSent);
          pending.packetsSent = 0;
        }
      },
    }),
    deliveryLatency: new Histogram({ name: `${NS}_gateway_delivery_latency_seconds`, help: 'From message timestamp (emit or publish) to socket write on this pod', labelNames: ['kind'] as const, buckets: LATENCY_BUCKETS, registers: r }),
    // gateway: backpressure
    slowConsumerDrops: new Counter({ name: `${NS}_gateway_slow_consumer_drops_total`, help: 'Volatile packets dropped because the socket buffer was above the soft mark', registers: r }),
    slowConsumerDisconnects: new Counter({ name: `${NS}_gateway_slow_consumer_disconnects_total`, help: 'Sockets cut because their buffer passed the hard mark', registers: r }),
    volatileDrops: new Counter({ name: `${NS}_gateway_volatile_drops_total`, help: 'Volatile packets dropped because the transport was not writable', registers: r }),
    // gateway: recovery
    recoveryAttempts: new Counter({ name: `${NS}_gateway_recovery_attempts_total`, help: 'Connections that asked for state recovery', registers: r }),
    recoverySuccesses: new Counter({ name: `${NS}_gateway_recovery_successes_total`, help: 'Connections whose state was recovered', registers: r }),
    sessionsPersisted: new Counter({ name: `${NS}_gateway_sessions_persisted_total`, help: 'Recovery sessions written ahead of a disconnect', registers: r }),
    // shared
    redisErrors: new Counter({ name: `${NS}_redis_errors_total`, help: 'Redis command or connection errors', labelNames: ['op'] as const, registers: r }),
    redisUp: new Gauge({ name: `${NS}_redis_up`, help: '1 when the Redis connection is ready', registers: r }),
    taskFailures: new Counter({ name: `${NS}_process_task_failures_total`, help: 'Background task runs that failed (retried next period), by task', labelNames: ['task'] as const, registers: r }),
    ready: new Gauge({ name: `${NS}_process_ready`, help: '1 when /readyz answers 200', registers: r }),
    heartbeatAge: new Gauge({ name: `${NS}_presence_heartbeat_age_seconds`, help: 'Age of the oldest live pod heartbeat seen by this process', registers: r }),
    presenceTransitions: new Counter({ name: `${NS}_presence_transitions_total`, help: 'Presence transitions announced, by kind', labelNames: ['kind'] as const, registers: r }),
    reapedSockets: new Counter({ name: `${NS}_presence_reaped_sockets_total`, help: 'Sockets removed because their pod stopped heartbeating', registers: r }),
    onlineUsers: new Gauge({ name: `${NS}_presence_online_users`, help: 'Users with at least one connected socket (all pods)', registers: r }),
    deliveries: new Counter({ name: `${NS}_outbox_deliveries_total`, help: 'Backend publishes delivered, by target kind (all, rooms, user)', labelNames: ['target'] as const, registers: r }),
    deliveryFailures: new Counter({ name: `${NS}_outbox_delivery_failures_total`, help: 'Outbox delivery attempts that failed (retried later)', registers: r }),
    deadLetters: new Counter({ name: `${NS}_outbox_dead_letters_total`, help: 'Outbox entries moved to the dead-letter stream', registers: r }),
    outboxLength: new Gauge({ name: `${NS}_outbox_length`, help: 'Entries in the outbox stream (undelivered or in flight)', registers: r }),
    outboxLag: new Gauge({ name: `${NS}_outbox_lag`, help: 'Entries not yet read by the consumer group', registers: r }),
    outboxPending: new Gauge({ name: `${NS}_outbox_pending`, help: 'Entries read but not yet acknowledged', registers: r }),
    outboxOldestPendingAge: new Gauge({ name: `${NS}_outbox_oldest_pending_age_seconds`, help: 'Age of the oldest unacknowledged entry', registers: r }),
    deadLetterLength: new Gauge({ name: `${NS}_outbox_dead_letter_length`, help: 'Entries in the dead-letter stream', registers: r }),
    inboxAppends: new Counter({ name: `${NS}_inbox_appends_total`, help: 'Messages appended to inboxes, by kind (direct, publish)', labelNames: ['kind'] as const, registers: r }),
    inboxReplays: new Counter({ name: `${NS}_inbox_replays_total`, help: 'Inbox replays started on connect', registers: r }),
    inboxReplayed: new Counter({ name: `${NS}_inbox_replayed_messages_total`, help: 'Messages sent in queued-messages batches', registers: r }),
    retentionTrims: new Counter({ name: `${NS}_inbox_retention_trimmed_total`, help: 'Inbox messages removed by age retention', registers: r }),
    adapterStreamLength: new Gauge({ name: `${NS}_adapter_stream_length`, help: 'Entries in the adapter stream (broadcasts kept for recovery)', registers: r }),
    adapterReadLag: new Histogram({ name: `${NS}_adapter_read_lag_seconds`, help: 'Time from a broadcast entering the adapter stream to this pod reading it', buckets: LATENCY_BUCKETS, registers: r }),
    inboxDepth: new Gauge({ name: `${NS}_inbox_depth`, help: 'Messages held in all inboxes (measured by the retention pass)', registers: r }),
    inboxStreams: new Gauge({ name: `${NS}_inbox_streams`, help: 'Inbox streams (users with messages kept)', registers: r }),
    publishRequests: new Counter({ name: `${NS}_api_publish_requests_total`, help: 'Publish API requests by HTTP status', labelNames: ['status'] as const, registers: r }),
  };
  // Labelled counters start at zero so the first increment after a start shows in rate()/increase().
  for (const code of ERROR_CODES) m.errors.inc({ code }, 0);
  for (const scope of ['event', 'connect']) m.rateLimited.inc({ scope }, 0);
  for (const reason of ['no_ack', 'unknown_event', 'rate_limited']) m.eventsDropped.inc({ reason }, 0);
  for (const reason of ['missing_credentials', 'invalid_token', 'expired', 'bad_claims', 'jwks_unavailable', 'workspace', 'role', 'namespace', 'rate_limited', 'overloaded', 'error']) m.authFailures.inc({ reason }, 0);
  for (const op of ['connection', 'heartbeat', 'persist_session', 'adapter_publish', 'inbox_replay', 'outbox_read', 'reap']) m.redisErrors.inc({ op }, 0);
  for (const target of ['all', 'rooms', 'user']) m.deliveries.inc({ target }, 0);
  for (const kind of ['direct', 'publish']) m.inboxAppends.inc({ kind }, 0);
  for (const kind of ['online', 'offline']) m.presenceTransitions.inc({ kind }, 0);
  for (const kind of ['room', 'direct']) m.messagesPublished.inc({ kind }, 0);
  for (const status of ['202', '400', '401', '405', '413', '503']) m.publishRequests.inc({ status }, 0);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Low-cardinality label for a namespace name (workspace ids never become labels). */
export function nsLabel(name: string): string {
  if (name === '/' || name === '/admin') return name;
  return 'workspace';
}
