/**
 * The Socket.IO adapter and everything that travels through it: `broadcast()` (how every module
 * emits to rooms across pods), the adapter installed on a server, and the stream-entry format of
 * announcements written by Lua scripts.
 */
import { createAdapter } from '@socket.io/redis-streams-adapter';
import type { Namespace, Server } from 'socket.io';
import type { Config } from './platform/config';
import { UnavailableError } from './platform/errors';
import type { Metrics } from './platform/metrics';
import { contextFrom, inSpan, SpanKind, traceparentOf } from './platform/telemetry';
import type { RedisClient } from './redis/client';
import type { Keys } from './redis/keys';

/** ClusterAdapter message type of a broadcast. */
const BROADCAST = 3;

/** Packets whose adapter publish (XADD) failed: `broadcast()` turns them into `unavailable`. */
const failedPackets = new WeakSet<object>();
/** Where a broadcast packet's message started, for the stream entry (delivery latency on other pods). */
const packetOrigins = new WeakMap<object, Origin>();
/** Per Socket.IO server: observes end-to-end delivery latency (origin timestamp to socket write on this pod). */
const latencyObservers = new WeakMap<object, (kind: string, seconds: number) => void>();

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

/** Measures delivery latency on `io` (only a process that writes to sockets, a gateway, does). */
export function observeDeliveryLatency(io: Server, metrics: Metrics): void {
  latencyObservers.set(io, (kind, seconds) => metrics.deliveryLatency.observe({ kind }, seconds));
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

type Msg = { uid?: string; type?: number; data?: { packet?: object; tp?: string; ts?: number; k?: string } };
type StreamsAdapter = { uid: string; doPublish(m: Msg): Promise<string>; onMessage(m: Msg, offset?: string): unknown };

/** The Redis Streams adapter's options (also what the benchmarks' bare Socket.IO baseline runs with). */
export function streamsAdapterOptions(keys: Keys, cfg: Pick<Config, 'adapterStreamMaxLen' | 'heartbeatIntervalMs'>) {
  return {
    streamName: keys.adapterStream(),
    streamCount: 1,
    channelPrefix: keys.channelPrefix(),
    sessionKeyPrefix: keys.sessionPrefix(),
    maxLen: cfg.adapterStreamMaxLen,
    heartbeatInterval: cfg.heartbeatIntervalMs,
    heartbeatTimeout: cfg.heartbeatIntervalMs * 3,
    blockTimeInMs: 2000,
  };
}

/**
 * Installs the Redis Streams adapter on `io`. Broadcasts carry their trace context and origin
 * time inside the stream entry, so the pods that emit them continue the trace and measure
 * end-to-end latency.
 */
export function attachRedisAdapter(io: Server, redis: RedisClient, keys: Keys, cfg: Config, metrics: Metrics): void {
  const factory = createAdapter(redis, streamsAdapterOptions(keys, cfg));
  // A regular function: Socket.IO instantiates the adapter with `new`.
  io.adapter(function (this: unknown, nsp: Namespace) {
    const adapter = factory(nsp) as unknown as StreamsAdapter;
    const publish = adapter.doPublish.bind(adapter);
    const receive = adapter.onMessage.bind(adapter);
    adapter.onMessage = (m, offset) => {
      if (offset && m?.uid !== adapter.uid) metrics.adapterReadLag.observe(Math.max(0, Date.now() - Number(offset.split('-')[0])) / 1000);
      const observe = latencyObservers.get(io);
      if (!observe || m?.type !== BROADCAST || m.uid === adapter.uid || !m.data || (!m.data.tp && !m.data.ts)) return receive(m, offset);
      const { tp, ts, k } = m.data;
      const attributes = { 'messaging.system': 'redis-streams', 'socket.io.namespace': nsp.name };
      return inSpan('adapter emit', { kind: SpanKind.CONSUMER, parent: contextFrom(tp), attributes }, async () => {
        receive(m, offset);
        if (ts) observe(k ?? 'room', Math.max(0, Date.now() - ts) / 1000);
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
}

/**
 * The field/value pairs of the adapter stream entry of a broadcast of `event` to `rooms` of
 * namespace `nsp` (the format @socket.io/redis-streams-adapter 0.3 writes and reads). Lua scripts
 * append such entries for announcements that must reach every pod exactly once even when the
 * process making them dies half-way (a reaper or sweeper killed mid-pass and retried by another):
 * the script that appends the entry also records it, so a retry can tell it was sent. Every pod
 * delivers such an entry (its uid is no pod's), and recovering clients replay it.
 */
export function adapterBroadcastFields(uid: string, nsp: string, rooms: string[], event: string, payload: unknown): string[] {
  const data = JSON.stringify({ packet: { type: 2, data: [event, payload], nsp }, opts: { rooms, except: [], flags: {} } });
  return ['uid', uid, 'nsp', nsp, 'type', String(BROADCAST), 'data', data];
}

/** Announcements that must be sent at most once even when the process making them dies half-way and another retries. */
export interface Announcer {
  /** Broadcasts `event` to `rooms` of `nsp` unless an announcement with the same `key` was sent (within an hour); true when sent now. */
  once(key: string, nsp: string, rooms: string[], event: string, payload: unknown): Promise<boolean>;
}

/** Adapter uid of the reaper's announcements: no pod's, so every pod delivers them. */
const REAPER_UID = 'reaper';
/** How long a sent announcement is remembered: far longer than a reaper takes to be replaced. */
const ONCE_TTL_MS = 3_600_000;

/** Announcements appended to the adapter stream by a script that records them (announce-once-2.lua). */
export function redisAnnouncer(redis: RedisClient, keys: Keys, streamMaxLen: number): Announcer {
  return {
    async once(key, nsp, rooms, event, payload) {
      const fields = adapterBroadcastFields(REAPER_UID, nsp, rooms, event, payload);
      return (await redis.announceOnce(keys.adapterStream(), keys.announceOnce(key), ONCE_TTL_MS, streamMaxLen, ...fields)) !== null;
    },
  };
}

/** A single node's announcements: one process, nothing to retry elsewhere, so a plain broadcast. */
export function localAnnouncer(io: Server): Announcer {
  return {
    async once(_key, nsp, rooms, event, payload) {
      await broadcast(io.of(nsp), { rooms }, event, payload);
      return true;
    },
  };
}
