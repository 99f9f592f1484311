import { encode } from '@msgpack/msgpack';
import type { Server } from 'socket.io';
import { attachRedisAdapter, localAnnouncer, observeDeliveryLatency, redisAnnouncer, type Announcer } from './adapter';
import { MemoryInbox } from './inbox/memory';
import { RedisInbox } from './inbox/redis';
import type { InboxStore } from './inbox/store';
import { DirectOutbox } from './outbox/direct';
import type { Outbox } from './outbox/publish';
import { RedisOutbox } from './outbox/redis';
import type { Config } from './platform/config';
import type { Logger } from './platform/logger';
import type { Metrics } from './platform/metrics';
import { MemoryPodRegistry } from './pods/memory';
import { RedisPodRegistry } from './pods/redis';
import type { PodRegistry } from './pods/registry';
import { MemoryPresence } from './presence/memory';
import { RedisPresence } from './presence/redis';
import type { PresenceStore } from './presence/store';
import { createRedis, waitReady, type RedisClient } from './redis/client';
import { Keys } from './redis/keys';
import { defineScripts } from './redis/scripts';
import { MemoryRoomStore } from './rooms/memory-store';
import { RedisRoomStore } from './rooms/redis-store';
import type { RoomStore } from './rooms/store';

/**
 * The engine: in-memory (single node, no REDIS_URL) or Redis (Streams adapter + Redis stores).
 * Both give the same store semantics and the same broadcast, so the same behaviour tests run on both.
 */
export interface Engine {
  kind: 'memory' | 'redis';
  keys: Keys;
  rooms: RoomStore;
  pods: PodRegistry;
  presence: PresenceStore;
  inbox: InboxStore;
  /** Where accepted backend publishes go (Redis outbox, or direct delivery on a single node). */
  outbox(io: Server): Outbox;
  /** Announcements sent at most once across retries (the reaper's user-left). */
  announcer(io: Server): Announcer;
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
  const inboxOpts = { maxLen: cfg.inboxMaxLen, maxAgeMs: cfg.inboxMaxAgeMs, dedupWindowMs: cfg.idempotencyWindowMs };
  return cfg.redisUrl
    ? redisEngine(cfg.redisUrl, cfg, keys, inboxOpts, holdsSockets, logger, metrics)
    : memoryEngine(cfg, keys, inboxOpts, holdsSockets, metrics);
}

type InboxOpts = ConstructorParameters<typeof MemoryInbox>[0];

function memoryEngine(cfg: Config, keys: Keys, inboxOpts: InboxOpts, holdsSockets: boolean, metrics: Metrics): Engine {
  const inbox = new MemoryInbox(inboxOpts);
  return {
    kind: 'memory',
    keys,
    rooms: new MemoryRoomStore(),
    pods: new MemoryPodRegistry(),
    presence: new MemoryPresence(),
    inbox,
    outbox: (io) => new DirectOutbox(io, inbox, metrics, cfg.idempotencyWindowMs),
    announcer: localAnnouncer,
    attach(io: Server) {
      // The default in-memory adapter (session-aware when recovery is on).
      if (holdsSockets) observeDeliveryLatency(io, metrics);
    },
    available: () => true,
    ready: async () => undefined,
    persistSession() {
      /* a single node loses its sessions with the process anyway */
    },
    close: async () => undefined,
  };
}

function redisEngine(
  url: string,
  cfg: Config,
  keys: Keys,
  inboxOpts: InboxOpts,
  holdsSockets: boolean,
  logger: Logger,
  metrics: Metrics,
): Engine {
  const redis = createRedis(url, { cluster: cfg.redisCluster, role: 'command', failFast: true, logger, metrics });
  const adapterRedis = createRedis(url, { cluster: cfg.redisCluster, role: 'adapter', logger, metrics });
  defineScripts(redis);
  const updateUp = () => metrics.redisUp.set(redis.status === 'ready' ? 1 : 0);
  redis.on('ready', updateUp);
  redis.on('close', updateUp);
  redis.on('end', updateUp);
  updateUp();
  const announcer = redisAnnouncer(redis, keys, cfg.adapterStreamMaxLen);
  return {
    kind: 'redis',
    keys,
    rooms: new RedisRoomStore(redis, keys),
    pods: new RedisPodRegistry(redis, keys),
    presence: new RedisPresence(redis, keys, { streamMaxLen: cfg.adapterStreamMaxLen }),
    inbox: new RedisInbox(redis, keys, inboxOpts),
    outbox: () => new RedisOutbox(redis, keys, cfg.idempotencyWindowMs),
    announcer: () => announcer,
    redis,
    attach(io: Server) {
      if (holdsSockets) observeDeliveryLatency(io, metrics);
      attachRedisAdapter(io, adapterRedis, keys, cfg, metrics);
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
