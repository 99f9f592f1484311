import type { Server, Namespace } from 'socket.io';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { encode } from '@msgpack/msgpack';
import type { Config } from './config';
import { UnavailableError } from './errors';
import { Keys } from './keys';
import type { Logger } from './logger';
import { MemoryStore } from './memory-store';
import type { Metrics } from './metrics';
import { createRedis, defineScripts, RedisClient, waitReady } from './redis';
import { RedisStore } from './redis-store';
import type { Store } from './store';
import { contextFrom, inSpan, SpanKind, traceparentOf } from './telemetry';
import { MemoryPresence, PresenceStore, RedisPresence } from './presence';
import { InboxStore, MemoryInbox, RedisInbox } from './inbox';
import { DirectOutbox, Outbox, RedisOutbox } from './publish';

/** Packets whose adapter publish (XADD) failed: `broadcast()` turns them into `unavailable`. */
const failedPackets = new WeakSet<object>();
/** Where a broadcast packet's message started, for the stream entry (delivery latency on other pods). */
const packetOrigins = new WeakMap<object, Origin>();
/** ClusterAdapter message type of a broadcast. */
const BROADCAST = 3;
/** Per Socket.IO server: observes end-to-end delivery latency (origin timestamp to socket write on this pod). */
const latencyObservers = new WeakMap<object, (kind: string, seconds: number) => void>();

/**
 * The engine: in-memory (single node, no REDIS_URL) or Redis (Streams adapter + Redis store).
 * Both give the same Store semantics and the same broadcast, so the same behaviour tests run on both.
 */
export interface Engine {
  kind: 'memory' | 'redis';
  keys: Keys;
  store: Store;
  presence: PresenceStore;
  inbox: InboxStore;
  /** Where accepted backend publishes go (Redis outbox, or direct delivery on a single node). */
  outbox(io: Server): Outbox;
  /** Redis command client (fail-fast) when clustered. */
  redis?: RedisClient;
  /** Installs the adapter on a Socket.IO server. */
  attach(io: Server): void;
  /** True when Redis (if any) is reachable. */
  available(): boolean;
  /** Waits for Redis at start-up (bounded). */
  ready(timeoutMs?: number): Promise<void>;
  /** Writes a socket's recovery session ahead of any disconnect, so a SIGKILL loses nothing. */
  persistSession(session: { sid: string; pid?: string; rooms: string[]; data: unknown }): void;
  close(): Promise<void>;
}

/** Creates the engine for the configuration. */
export function createEngine(cfg: Config, logger: Logger, metrics: Metrics, opts: { holdsSockets?: boolean } = {}): Engine {
  const keys = new Keys(cfg.keyPrefix);
  // Only a process that writes to sockets (a gateway) measures delivery latency.
  const holdsSockets = opts.holdsSockets !== false;
  const observe = (io: Server) => {
    if (holdsSockets) latencyObservers.set(io, (kind, seconds) => metrics.deliveryLatency.observe({ kind }, seconds));
  };
  const inboxOpts = { maxLen: cfg.inboxMaxLen, maxAgeMs: cfg.inboxMaxAgeMs, dedupWindowMs: cfg.idempotencyWindowMs };
  if (!cfg.redisUrl) {
    const store = new MemoryStore();
    const inbox = new MemoryInbox(inboxOpts);
    return {
      kind: 'memory',
      keys,
      store,
      presence: new MemoryPresence(),
      inbox,
      outbox: (io) => new DirectOutbox(io, inbox, metrics, cfg.idempotencyWindowMs),
      attach(io: Server) {
        // The default in-memory adapter (session-aware when recovery is on).
        observe(io);
      },
      available: () => true,
      ready: async () => undefined,
      persistSession() {
        /* a single node loses its sessions with the process anyway */
      },
      close: async () => undefined,
    };
  }
  const redis = createRedis(cfg.redisUrl, { cluster: cfg.redisCluster, role: 'command', failFast: true, logger, metrics });
  const adapterRedis = createRedis(cfg.redisUrl, { cluster: cfg.redisCluster, role: 'adapter', logger, metrics });
  defineScripts(redis);
  const store = new RedisStore(redis, keys);
  const updateUp = () => metrics.redisUp.set(redis.status === 'ready' ? 1 : 0);
  redis.on('ready', updateUp);
  redis.on('close', updateUp);
  redis.on('end', updateUp);
  updateUp();
  return {
    kind: 'redis',
    keys,
    store,
    presence: new RedisPresence(redis, keys, { streamMaxLen: cfg.adapterStreamMaxLen }),
    inbox: new RedisInbox(redis, keys, inboxOpts),
    outbox: () => new RedisOutbox(redis, keys, cfg.idempotencyWindowMs),
    redis,
    attach(io: Server) {
      observe(io);
      const factory = createAdapter(adapterRedis, {
        streamName: keys.adapterStream(),
        streamCount: 1,
        channelPrefix: keys.channelPrefix(),
        sessionKeyPrefix: keys.sessionPrefix(),
        maxLen: cfg.adapterStreamMaxLen,
        heartbeatInterval: cfg.heartbeatIntervalMs,
        heartbeatTimeout: cfg.heartbeatIntervalMs * 3,
        blockTimeInMs: 2000,
      });
      // A regular function: Socket.IO instantiates the adapter with `new`.
      io.adapter(function (this: unknown, nsp: Namespace) {
        type Msg = { uid?: string; type?: number; data?: { packet?: object; tp?: string; ts?: number; k?: string } };
        const adapter = factory(nsp) as unknown as { uid: string; doPublish(m: Msg): Promise<string>; onMessage(m: Msg, offset?: string): unknown };
        const publish = adapter.doPublish.bind(adapter);
        const receive = adapter.onMessage.bind(adapter);
        // Broadcasts carry their trace context and origin time inside the stream entry, so the
        // pods that emit them continue the trace and measure end-to-end latency.
        adapter.onMessage = (m, offset) => {
          if (offset && m?.uid !== adapter.uid) metrics.adapterReadLag.observe(Math.max(0, Date.now() - Number(offset.split('-')[0])) / 1000);
          if (!holdsSockets || m?.type !== BROADCAST || m.uid === adapter.uid || !m.data || (!m.data.tp && !m.data.ts)) return receive(m, offset);
          const { tp, ts, k } = m.data;
          return inSpan('adapter emit', { kind: SpanKind.CONSUMER, parent: contextFrom(tp), attributes: { 'messaging.system': 'redis-streams', 'socket.io.namespace': nsp.name } }, async () => {
            receive(m, offset);
            if (ts) latencyObservers.get(io)?.(k ?? 'room', Math.max(0, Date.now() - ts) / 1000);
          });
        };
        adapter.doPublish = (m) =>
          Promise.resolve()
            .then(() => {
              if (m?.type === BROADCAST && m.data) {
                const tp = traceparentOf();
                const o = m.data.packet ? packetOrigins.get(m.data.packet) : undefined;
                if (tp) m.data.tp = tp;
                if (o) {
                  m.data.ts = o.ts;
                  m.data.k = o.kind;
                }
              }
              return publish(m);
            })
            .catch((e: Error) => {
              metrics.redisErrors.inc({ op: 'adapter_publish' });
              if (m?.data?.packet) failedPackets.add(m.data.packet);
              throw e;
            });
        return adapter;
      } as never);
    },
    available: () => redis.status === 'ready',
    async ready(timeoutMs = 15000) {
      await Promise.all([waitReady(redis, timeoutMs), waitReady(adapterRedis, timeoutMs)]);
    },
    persistSession(session) {
      if (!session.pid || redis.status !== 'ready') return;
      // The adapter's own format (msgpack, base64, PX = window), so restoreSession() reads it.
      redis
        .set(keys.sessionPrefix() + session.pid, Buffer.from(encode(session)).toString('base64'), 'PX', cfg.recoveryWindowMs)
        .then(() => metrics.sessionsPersisted.inc())
        .catch(() => metrics.redisErrors.inc({ op: 'persist_session' }));
    },
    async close() {
      await Promise.allSettled([redis.quit(), adapterRedis.quit()]);
      redis.disconnect();
      adapterRedis.disconnect();
    },
  };
}

/** When and as what a message started (its timestamp and kind), for the delivery latency metric. */
export interface Origin {
  ts: number;
  kind: string;
}

/** What a broadcast targets; rooms empty = the whole namespace. */
export interface Target {
  rooms?: string[];
  except?: string[];
  volatile?: boolean;
  origin?: Origin;
}

/** Broadcasts one event through the adapter (all pods) and resolves once it is published; `unavailable` when the publish failed. */
export async function broadcast(nsp: Namespace, target: Target, event: string, ...args: unknown[]): Promise<void> {
  const packet = { type: 2, data: [event, ...args] };
  if (target.origin) packetOrigins.set(packet, target.origin);
  const flags: Record<string, boolean> = {};
  if (target.volatile) flags.volatile = true;
  await (nsp.adapter as unknown as { broadcast(p: object, o: object): Promise<void> | void }).broadcast(packet, {
    rooms: new Set(target.rooms ?? []),
    except: new Set(target.except ?? []),
    flags,
  });
  if (failedPackets.has(packet)) throw new UnavailableError('the message could not be published (Redis unavailable)');
  const o = target.origin;
  if (o) latencyObservers.get(nsp.server)?.(o.kind, Math.max(0, Date.now() - o.ts) / 1000);
}
