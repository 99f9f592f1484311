import type { Socket } from 'socket.io';
import type { Metrics } from '../core/metrics';

interface EngineConn {
  transport: { name: string; writable: boolean; socket?: { bufferedAmount?: number; terminate?: () => void } };
  writeBuffer: unknown[];
  on(ev: 'flush', fn: () => void): void;
  close(discard?: boolean): void;
}

interface PatchedClient {
  conn: EngineConn;
  writeToEngine(packets: unknown, opts: { volatile?: boolean }): void;
  __rtgBounded?: boolean;
}

const buffered = new WeakMap<object, () => number>();

/** Bytes buffered for the socket's connection right now (0 when unknown). */
export function bufferedBytes(socket: Socket): number {
  return buffered.get(socket.client)?.() ?? 0;
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

function packetBytes(p: unknown): number {
  if (typeof p === 'string') return Buffer.byteLength(p);
  if (p && typeof (p as { byteLength?: number }).byteLength === 'number') return (p as { byteLength: number }).byteLength;
  return 0;
}

/**
 * Bounds the bytes buffered for one connection (all its namespaces). Above `soft`, volatile packets
 * are dropped; above `hard`, the transport is cut (the client sees "transport close", reconnects
 * and recovers its session). Counting is O(1) per write: bytes queued since the last flush plus
 * what the websocket still holds.
 */
export function boundOutboundBuffer(socket: Socket, soft: number, hard: number, metrics: Metrics, onCut: () => void): void {
  const client = socket.client as unknown as PatchedClient;
  if (client.__rtgBounded) return;
  client.__rtgBounded = true;
  const conn = client.conn;
  let queued = 0;
  let cut = false;
  conn.on('flush', () => {
    queued = 0;
  });
  buffered.set(client, () => queued + (conn.transport.name === 'websocket' ? conn.transport.socket?.bufferedAmount ?? 0 : 0));
  const write = client.writeToEngine.bind(client);
  client.writeToEngine = (packets, opts) => {
    if (cut) return;
    const list = Array.isArray(packets) ? packets : [packets];
    let size = 0;
    for (const p of list) size += packetBytes(p);
    const ws = conn.transport.name === 'websocket' ? conn.transport.socket?.bufferedAmount ?? 0 : 0;
    const buffered = queued + ws;
    if (opts?.volatile) {
      if (!conn.transport.writable && conn.transport.name !== 'websocket') {
        metrics.volatileDrops.inc();
        return;
      }
      if (buffered + size > soft) {
        metrics.slowConsumerDrops.inc();
        return;
      }
    }
    if (buffered + size > hard) {
      cut = true;
      metrics.slowConsumerDisconnects.inc();
      onCut();
      // Terminate at once (a polite close would keep the backlog in memory while it drains).
      const raw = conn.transport.socket;
      if (conn.transport.name === 'websocket' && raw?.terminate) raw.terminate();
      else conn.close(true);
      return;
    }
    queued += size;
    metrics.packetsSent.inc(list.length);
    // The volatile decision is made above (counted); Socket.IO would otherwise silently drop a
    // volatile packet whenever the websocket is busy with the previous write, even far below `soft`.
    write(packets, opts?.volatile ? { ...opts, volatile: false } : opts);
  };
}
