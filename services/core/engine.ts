import type { Namespace, Server, Socket } from 'socket.io';
import { localAnnouncer, redisAnnouncer, type Announcer } from './adapter/announcer';
import { observeDeliveryLatency } from './adapter/broadcast';
import { Hub } from './adapter/hub';
import { Adapter } from 'socket.io-adapter';
import { LocalAdapter } from './adapter/local-adapter';
import { memoryRecovery, redisRecovery, type Recovery } from './adapter/recovery';
import { SessionStore } from './adapter/sessions';
import { ShardedAdapter } from './adapter/sharded-adapter';
import { NSP_ROOM, Shards } from './adapter/shards';
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
  /** Announcements sent at most once across retries (the reaper's user-left, presence transitions). */
  announcer(io: Server): Announcer;
  /** Connection state recovery: restores bound to their user, sessions kept as sockets join and leave. */
  recovery: Recovery;
  /** Redis command client (fail-fast) when clustered. */
  redis?: RedisClient;
  /** Installs the adapter on a Socket.IO server. */
  attach(io: Server): void;
  /** True when Redis (if any) is reachable. */
  available(): boolean;
  /** Waits for Redis at start-up (bounded). */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Creates the engine for the configuration. */
export function createEngine(cfg: Config, logger: Logger, metrics: Metrics, opts: { holdsSockets?: boolean } = {}): Engine {
  const keys = new Keys(cfg.keyPrefix);
  // Only a process that writes to sockets (a gateway) measures delivery latency.
  const holdsSockets = opts.holdsSockets !== false;
  const inboxOpts = {
    maxLen: cfg.inboxMaxLen,
    maxBytes: cfg.inboxMaxBytes,
    maxAgeMs: cfg.inboxMaxAgeMs,
    dedupWindowMs: cfg.idempotencyWindowMs,
  };
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
    recovery: memoryRecovery(cfg.recoveryWindowMs),
    attach(io: Server) {
      if (holdsSockets) observeDeliveryLatency(io, metrics);
      // Socket.IO's own choice (a session-aware adapter when recovery is on), with our changes.
      const recovery = (io as unknown as { opts: { connectionStateRecovery?: unknown } }).opts.connectionStateRecovery;
      io.adapter((recovery ? LocalAdapter : Adapter) as never);
    },
    available: () => true,
    ready: async () => undefined,
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
  defineScripts(redis);
  const updateUp = () => metrics.redisUp.set(redis.status === 'ready' ? 1 : 0);
  redis.on('ready', updateUp);
  redis.on('close', updateUp);
  redis.on('end', updateUp);
  updateUp();
  const shards = new Shards(cfg.keyPrefix, cfg.adapterShards);
  const history = { maxLen: cfg.adapterRoomHistory, ttlMs: cfg.recoveryWindowMs + 60_000 };
  const announcer = redisAnnouncer(redis, shards, history);
  let onOverflow: (rooms: Array<{ nsp: string; room: string }>) => void = () => undefined;
  const hub = new Hub(shards, redis, url, logger, metrics, (rooms) => onOverflow(rooms));
  const sessions = new SessionStore(redis, keys, cfg.recoveryWindowMs);
  const limits = { windowMs: cfg.recoveryWindowMs, maxRead: cfg.recoveryMaxRead, maxMissed: cfg.recoveryMaxMissed };
  return {
    kind: 'redis',
    keys,
    rooms: new RedisRoomStore(redis, keys),
    pods: new RedisPodRegistry(redis, keys),
    presence: new RedisPresence(redis, keys, announcer),
    inbox: new RedisInbox(redis, keys, inboxOpts),
    outbox: () => new RedisOutbox(redis, keys, cfg.idempotencyWindowMs),
    announcer: () => announcer,
    recovery: redisRecovery(sessions, redis, metrics, limits),
    redis,
    attach(io: Server) {
      if (holdsSockets) observeDeliveryLatency(io, metrics);
      // A worker answers cluster requests in `/` only: its workspace namespaces (made to publish) stay light.
      const options = (nsp: Namespace) => ({
        hub,
        redis,
        metrics,
        roomMaxLen: history.maxLen,
        historyTtlMs: history.ttlMs,
        control: holdsSockets || nsp.name === '/',
      });
      io.adapter(function (this: unknown, nsp: Namespace) {
        return new ShardedAdapter(nsp, options(nsp));
      } as never);
      // A gap too large to fill: the rooms' local sockets reconnect and recover from their own offsets.
      onOverflow = (rooms) => {
        for (const { nsp, room } of rooms) {
          const adapter = io._nsps.get(nsp)?.adapter as unknown as ShardedAdapter | undefined;
          adapter?.forEachRecipient(new Set(room === NSP_ROOM ? [] : [room]), undefined, (s: Socket) =>
            (s.client as unknown as { conn: { close(): void } }).conn.close(),
          );
        }
      };
    },
    available: () => redis.status === 'ready',
    async ready(timeoutMs = 15000) {
      await waitReady(redis, timeoutMs);
      hub.start();
      await hub.whenUp(timeoutMs);
    },
    async close() {
      hub.stop();
      await Promise.allSettled([redis.quit()]);
      redis.disconnect();
    },
  };
}
