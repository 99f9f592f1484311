import { io, Socket } from 'socket.io-client';
import type { Cluster } from '../e2e/cluster';
import { ask, FAST_RECONNECT, serverOf } from '../e2e/clients';
import { cmpOffset } from './verdicts';

// A soak client: a stock socket.io-client socket that reconnects by itself (FAST_RECONNECT, no
// attempt limit, and again after a refusal or a server-side disconnect, which socket.io-client
// does not retry) and records everything the verdicts need, with wall-clock times:
// - connects (recovered or not, socket id, the gateway HAProxy pinned it to), disconnects
//   (reason), engine opens/closes (a handshake cut before CONNECT), connect errors;
// - its room joins, acknowledged, per socket id: a session (socket id) that comes back
//   `recovered === false` is a new session, whose rooms the client joins again, as an app does;
// - every room message and room publish it received, by id, with the stream offset Socket.IO
//   appends to each packet, and the highest offset it saw per session (any event);
// - direct messages and user publishes, live or replayed in `queued-messages`.

export type Role = 'resident' | 'churn' | 'absent' | 'observer';
export type TransportMix = 'polling' | 'websocket' | 'both';

export interface Delivery {
  /** Message id (room message) or publish id (room publish). */
  key: string;
  kind: 'msg' | 'pub';
  room: string;
  at: number;
  offset?: string;
  sid: string;
}

export interface ClientRecord {
  label: string;
  userId: string;
  role: Role;
  transport: TransportMix;
  desiredRooms: string[];
  createdAt: number;
  connects: Array<{ at: number; recovered: boolean; sid: string; server?: string }>;
  disconnects: Array<{ at: number; reason: string; sid?: string; server?: string }>;
  engineOpens: number[];
  /** Engine.IO connection events of the manager: open, close (reason, description), error. */
  engineEvents: Array<{ at: number; event: string; detail?: string }>;
  connectErrors: Array<{ at: number; message: string; refused: boolean }>;
  joins: Array<{ room: string; at: number; sid: string }>;
  joinFailures: Record<string, number>;
  deliveries: Delivery[];
  /** Highest stream offset seen per session (socket id), any event (stream-id offsets only; a position vector is opaque). */
  maxOffset: Record<string, string>;
  /** Direct messages (inbox ids) and user publishes (publish ids) received, live or from the inbox replay. */
  directs: Array<{ id: string; at: number; via: 'live' | 'queued' }>;
  notices: Array<{ pid: string; at: number; via: 'live' | 'queued' }>;
  /** When the harness disconnected it on purpose. */
  closedAt?: number;
  /** Filled at the end: connected when the checks ran. */
  connectedAtEnd?: boolean;
}

export interface SoakClient {
  rec: ClientRecord;
  socket: Socket;
  /** True while connected and every desired room is joined in the current session. */
  settled(): boolean;
  /** Joins the desired rooms missing in the current session, if connected (also run on every connect). */
  kick(): void;
  close(): void;
}

const OFFSET_RE = /^\d+-\d+$/;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function soakClient(
  c: Cluster,
  o: { label: string; userId: string; role: Role; transport: TransportMix; rooms: string[]; ackTimeoutMs?: number },
): SoakClient {
  const rec: ClientRecord = {
    label: o.label,
    userId: o.userId,
    role: o.role,
    transport: o.transport,
    desiredRooms: [...o.rooms],
    createdAt: Date.now(),
    connects: [],
    disconnects: [],
    engineOpens: [],
    engineEvents: [],
    connectErrors: [],
    joins: [],
    joinFailures: {},
    deliveries: [],
    maxOffset: {},
    directs: [],
    notices: [],
  };
  const socket = io(c.baseUrl, {
    // A fresh token at every handshake: long soaks outlive a token.
    auth: (cb) => void c.token(o.userId, {}).then((token) => cb({ token })),
    withCredentials: true,
    forceNew: true,
    timeout: 10000,
    ...FAST_RECONNECT,
    reconnectionAttempts: Infinity,
    transports: o.transport === 'polling' ? ['polling'] : o.transport === 'websocket' ? ['websocket'] : ['polling', 'websocket'],
  });
  let closed = false;
  const sidNow = () => socket.id ?? '?';
  const joinedNow = () => new Set(rec.joins.filter((j) => j.sid === socket.id).map((j) => j.room));
  const noteOffset = (args: unknown[]) => {
    const last = args[args.length - 1];
    if (typeof last !== 'string' || !OFFSET_RE.test(last) || !socket.id) return undefined;
    const prev = rec.maxOffset[socket.id];
    if (!prev || cmpOffset(last, prev) > 0) rec.maxOffset[socket.id] = last;
    return last;
  };

  // Joins every desired room not yet joined in the current session (retries: join is idempotent).
  let joining = false;
  const ensureRooms = async () => {
    if (joining) return;
    joining = true;
    try {
      while (!closed && socket.connected) {
        const missing = rec.desiredRooms.filter((r) => !joinedNow().has(r));
        if (!missing.length) return;
        for (const room of missing) {
          const sid = socket.id;
          const a = await ask(socket, 'join-room', room);
          if (a.ok && socket.id === sid && socket.connected) rec.joins.push({ room, at: Date.now(), sid: sid! });
          else if (!a.ok) {
            const code = a.error?.code ?? '?';
            rec.joinFailures[code] = (rec.joinFailures[code] ?? 0) + 1;
            await sleep(500);
          }
        }
      }
    } finally {
      joining = false;
    }
  };

  socket.on('connect', () => {
    rec.connects.push({ at: Date.now(), recovered: socket.recovered, sid: sidNow(), server: serverOf(socket) });
    void ensureRooms();
  });
  socket.on('disconnect', (reason) => {
    rec.disconnects.push({ at: Date.now(), reason, sid: socket.id, server: serverOf(socket) });
    // socket.io-client does not reconnect after a server-side disconnect by itself.
    if (reason === 'io server disconnect' && !closed) setTimeout(() => !closed && socket.connect(), 300);
  });
  socket.on('connect_error', (e: Error & { data?: unknown }) => {
    const refused = !socket.active;
    rec.connectErrors.push({ at: Date.now(), message: e.message, refused });
    // A refusal by the server (unavailable, rate_limited, ...) is not retried by socket.io-client.
    if (refused && !closed) setTimeout(() => !closed && !socket.connected && socket.connect(), 1000);
  });
  const describe = (d: unknown): string | undefined => {
    if (d === undefined || d === null) return undefined;
    if (d instanceof Error) return d.message;
    const o = d as { description?: unknown; context?: { status?: unknown } };
    if (typeof o === 'object' && ('description' in o || 'context' in o))
      return `${String(o.description ?? '')}${o.context?.status !== undefined ? ` status ${String(o.context.status)}` : ''}`;
    return String(d).slice(0, 200);
  };
  socket.io.on('open', () => {
    rec.engineOpens.push(Date.now());
    rec.engineEvents.push({ at: Date.now(), event: 'open' });
  });
  socket.io.on('close', (reason: string, description?: unknown) => {
    const d = describe(description);
    rec.engineEvents.push({ at: Date.now(), event: 'close', detail: d ? `${reason}: ${d}` : reason });
  });
  socket.io.on('error', (e: Error) => rec.engineEvents.push({ at: Date.now(), event: 'error', detail: describe(e) }));
  socket.onAny((_event: string, ...args: unknown[]) => void noteOffset(args));
  socket.on('message', (m: { id: string; room: string }, offset?: unknown) => {
    rec.deliveries.push({
      key: m.id,
      kind: 'msg',
      room: m.room,
      at: Date.now(),
      offset: typeof offset === 'string' ? offset : undefined,
      sid: sidNow(),
    });
  });
  socket.on('soak-news', (d: { pid: string; room: string }, offset?: unknown) => {
    rec.deliveries.push({
      key: d.pid,
      kind: 'pub',
      room: d.room,
      at: Date.now(),
      offset: typeof offset === 'string' ? offset : undefined,
      sid: sidNow(),
    });
  });
  socket.on('direct-message', (m: { id: string }) => rec.directs.push({ id: m.id, at: Date.now(), via: 'live' }));
  socket.on('soak-notice', (d: { pid: string }) => rec.notices.push({ pid: d.pid, at: Date.now(), via: 'live' }));
  socket.on('queued-messages', (b: { messages: Array<{ id: string; publishId?: string }> }) => {
    for (const m of b.messages ?? []) {
      if (m.publishId) rec.notices.push({ pid: m.publishId, at: Date.now(), via: 'queued' });
      else rec.directs.push({ id: m.id, at: Date.now(), via: 'queued' });
    }
  });

  return {
    rec,
    socket,
    settled: () => socket.connected && rec.desiredRooms.every((r) => joinedNow().has(r)),
    kick: () => void ensureRooms(),
    close: () => {
      if (closed) return;
      closed = true;
      rec.closedAt = Date.now();
      socket.disconnect();
    },
  };
}
