import type { Server, Socket } from 'socket.io';
import type { Metrics } from '../core/platform/metrics';
import { socketIoClientPrototype } from './socketio-internals';

const STATE = Symbol('rtg.outbound');

interface EngineConn {
  transport: { name: string; writable: boolean; socket?: { bufferedAmount?: number; terminate?: () => void } };
  on(ev: 'flush' | 'drain', fn: (this: EngineConn) => void): void;
  close(discard?: boolean): void;
  [STATE]?: State;
}

interface EngineClient {
  server: object;
  conn: EngineConn;
  writeToEngine(packets: unknown, opts: { volatile?: boolean }): void;
}

interface Limits {
  soft: number;
  hard: number;
  metrics: Metrics;
  onCut(): void;
}

interface State {
  limits: Limits;
  /** Bytes handed to Engine.IO since its last flush to the transport. */
  queued: number;
  /** When the connection last showed progress: its buffer was empty, flushed or drained. */
  lastProgress: number;
  cut: boolean;
  /** Limits apply once the connection handler ran (see armOutboundBound). */
  armed: boolean;
  /** Backlog from before arming (a recovery replay) that is not counted against the limits. */
  allowance: number;
}

/** Above the hard mark, a connection that made progress this recently is in a burst, not stalled... */
const BURST_GRACE_MS = 50;
/** ...but never beyond this multiple of the hard mark. */
const BURST_FACTOR = 4;

const limitsByServer = new WeakMap<object, Limits>();
/** Encoded size of a broadcast's packets, computed once for all its recipients. */
const sizes = new WeakMap<object, number>();
let patched = false;

function wsBuffered(conn: EngineConn): number {
  return conn.transport.name === 'websocket' ? (conn.transport.socket?.bufferedAmount ?? 0) : 0;
}

// Shared listeners (`this` is the Engine.IO connection): nothing is allocated per connection but the state.
function onFlush(this: EngineConn): void {
  const st = this[STATE];
  if (st) {
    st.queued = 0;
    st.lastProgress = Date.now();
  }
}
function onDrain(this: EngineConn): void {
  const st = this[STATE];
  if (st) st.lastProgress = Date.now();
}

function stateOf(client: EngineClient, limits: Limits): State {
  const conn = client.conn;
  let st = conn[STATE];
  if (!st) {
    st = { limits, queued: 0, lastProgress: Date.now(), cut: false, armed: false, allowance: 0 };
    conn[STATE] = st;
    conn.on('flush', onFlush);
    conn.on('drain', onDrain);
  }
  return st;
}

/** Bytes buffered for the socket's connection right now. */
export function bufferedBytes(socket: Socket): number {
  const conn = (socket.client as unknown as EngineClient).conn;
  return (conn[STATE]?.queued ?? 0) + wsBuffered(conn);
}

/** Resolves once the socket's buffer is below `bytes` (or it disconnected, or `timeoutMs` passed): paces bulk sends. */
export async function waitBelow(socket: Socket, bytes: number, timeoutMs = 30000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (socket.connected && bufferedBytes(socket) > bytes) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return socket.connected;
}

function byteSize(p: unknown): number {
  if (typeof p === 'string') return Buffer.byteLength(p);
  if (p && typeof (p as { byteLength?: number }).byteLength === 'number') return (p as { byteLength: number }).byteLength;
  return 0;
}

/** Size of what one write sends; a broadcast hands the same array to every recipient, so it is measured once. */
function packetsBytes(packets: unknown): { size: number; count: number } {
  if (!Array.isArray(packets)) return { size: byteSize(packets), count: 1 };
  let size = sizes.get(packets);
  if (size === undefined) {
    size = 0;
    for (const p of packets) size += byteSize(p);
    sizes.set(packets, size);
  }
  return { size, count: packets.length };
}

function cut(client: EngineClient, st: State): void {
  st.cut = true;
  st.limits.metrics.slowConsumerDisconnects.inc();
  st.limits.onCut();
  // Terminate at once (a polite close would keep the backlog in memory while it drains).
  const conn = client.conn;
  const raw = conn.transport.socket;
  if (conn.transport.name === 'websocket' && raw?.terminate) raw.terminate();
  else conn.close(true);
}

/** The bounded write: every packet to a client of a bounded server passes here. */
function boundedWrite(this: EngineClient, write: EngineClient['writeToEngine'], packets: unknown, opts: { volatile?: boolean }): void {
  const conn = this.conn;
  let st = conn[STATE];
  if (!st) {
    const limits = limitsByServer.get(this.server);
    if (!limits) return write.call(this, packets, opts);
    st = stateOf(this, limits);
  }
  if (st.cut) return;
  const { size, count } = packetsBytes(packets);
  if (!st.armed) {
    st.queued += size;
    return write.call(this, packets, opts);
  }
  const limits = st.limits;
  // A recovery replay written before arming is bounded by the adapter stream, not by these
  // limits: only what is buffered beyond what is left of it counts.
  const raw = st.queued + wsBuffered(conn);
  if (st.allowance > raw) st.allowance = raw;
  const buffered = raw - st.allowance;
  if (opts?.volatile) {
    if (!conn.transport.writable && conn.transport.name !== 'websocket') {
      limits.metrics.volatileDrops.inc();
      return;
    }
    if (buffered + size > limits.soft) {
      limits.metrics.slowConsumerDrops.inc();
      return;
    }
  }
  const total = buffered + size;
  if (raw === 0) st.lastProgress = Date.now();
  if (total > limits.hard && (total > limits.hard * BURST_FACTOR || (raw > 0 && Date.now() - st.lastProgress > BURST_GRACE_MS)))
    return cut(this, st);
  st.queued += size;
  limits.metrics.pending.packetsSent += count;
  // The volatile decision is made above (counted); Socket.IO would otherwise silently drop a
  // volatile packet whenever the websocket is busy with the previous write, even far below `soft`.
  write.call(this, packets, opts?.volatile ? { ...opts, volatile: false } : opts);
}

/** Starts enforcing the limits on the socket's connection (from its connection handler). */
export function armOutboundBound(socket: Socket): void {
  const client = socket.client as unknown as EngineClient;
  const limits = limitsByServer.get(client.server);
  if (!limits) return;
  const st = stateOf(client, limits);
  if (st.armed) return;
  st.armed = true;
  st.allowance = st.queued + wsBuffered(client.conn);
}

/**
 * Bounds the bytes buffered for each connection of `io` (all its namespaces) once armed
 * (a recovery replay before that is bounded by the adapter stream instead). Above `soft`,
 * volatile packets are dropped; above `hard`, the transport is cut (the client sees "transport
 * close", reconnects and recovers) — unless the connection made progress (was empty, flushed or
 * drained) within the last 50 ms: then it is in a burst (one adapter batch written in one tick)
 * and is tolerated up to 4x `hard`, so a healthy reader is not cut for one large batch. O(1) per write: bytes
 * queued in Engine.IO since its last flush plus what the websocket still holds.
 */
export function boundOutboundBuffers(io: Server, soft: number, hard: number, metrics: Metrics, onCut: () => void): void {
  limitsByServer.set(io, { soft, hard, metrics, onCut });
  if (patched) return;
  patched = true;
  const proto = socketIoClientPrototype<EngineClient>(['writeToEngine']);
  const write = proto.writeToEngine;
  proto.writeToEngine = function (this: EngineClient, packets: unknown, opts: { volatile?: boolean }) {
    boundedWrite.call(this, write, packets, opts);
  };
}
