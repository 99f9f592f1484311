/**
 * `broadcast()`: how every module emits to rooms across pods, whatever the engine's adapter, and
 * the bookkeeping the adapters share with it (a failed publish, a message's origin for the
 * delivery-latency metric).
 */
import type { Namespace, Server } from 'socket.io';
import type { Config } from '../platform/config';
import { UnavailableError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import type { Keys } from '../redis/keys';

/** Packets whose adapter publish failed: `broadcast()` turns them into `unavailable`. */
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

/** The adapter could not publish `packet`. */
export function markFailed(packet: object): void {
  failedPackets.add(packet);
}

/** Where a broadcast's message started, when the sender said. */
export function originOf(packet: object): Origin | undefined {
  return packetOrigins.get(packet);
}

/** Observes the delivery latency of a message that started at `ts` and reached sockets of this pod now. */
export function observeLatency(io: Server, kind: string, ts: number): void {
  latencyObservers.get(io)?.(kind, Math.max(0, Date.now() - ts) / 1000);
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
  if (o && local(nsp)) observeLatency(nsp.server, o.kind, o.ts);
}

/** True for the in-memory adapter (a single node: the broadcast reached its sockets before it returned). */
function local(nsp: Namespace): boolean {
  return typeof (nsp.adapter as unknown as { live?: unknown }).live !== 'function';
}

/** The Redis Streams adapter's options: what the benchmarks' bare Socket.IO baseline runs with. */
export function streamsAdapterOptions(keys: Keys, cfg: Pick<Config, 'heartbeatIntervalMs'>) {
  return {
    streamName: keys.adapterStream(),
    streamCount: 1,
    channelPrefix: keys.channelPrefix(),
    sessionKeyPrefix: keys.sessionPrefix(),
    maxLen: 100000,
    heartbeatInterval: cfg.heartbeatIntervalMs,
    heartbeatTimeout: cfg.heartbeatIntervalMs * 3,
    blockTimeInMs: 2000,
  };
}
