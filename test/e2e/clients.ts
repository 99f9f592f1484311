import http from 'http';
import { io, ManagerOptions, Socket, SocketOptions } from 'socket.io-client';
import type { Cluster } from './cluster';

// Stock socket.io-client clients through the balancer, with what the scenarios measure:
// every `message` counted by id, connects/disconnects/connect_errors with timestamps, and the
// gateway the balancer pinned the client to (HAProxy's RTGSRV cookie in engine.io's cookie jar).

/** Quick reconnection so scenarios do not wait on the default back-off. */
export const FAST_RECONNECT = {
  reconnection: true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
  randomizationFactor: 0.5,
  reconnectionAttempts: 600,
} as const;

export interface Received {
  id: string;
  room: string;
  userId: string;
  text?: string;
  data?: Record<string, unknown>;
  timestamp: number;
}

export interface E2EClient {
  userId: string;
  socket: Socket;
  /** `message` events by id: how many times each arrived. */
  counts: Map<string, number>;
  /** `message` payloads in arrival order. */
  messages: Received[];
  /** When each message (by id) first arrived. */
  arrivedAt: Map<string, number>;
  connects: Array<{ at: number; recovered: boolean; server?: string }>;
  disconnects: Array<{ at: number; reason: string }>;
  connectErrors: Array<{ at: number; message: string }>;
  /** The gateway HAProxy pinned the current connection to (RTGSRV cookie), when known. */
  server(): string | undefined;
  close(): void;
}

const open = new Set<Socket>();

/** The RTGSRV cookie engine.io-client keeps for this connection (withCredentials: true). */
export function serverOf(socket: Socket): string | undefined {
  const jar = (socket.io.engine as unknown as { _cookieJar?: { cookies: Iterable<[string, { value: string }]> } } | undefined)?._cookieJar;
  if (!jar) return undefined;
  for (const [name, c] of jar.cookies) if (name === 'RTGSRV') return c.value;
  return undefined;
}

/** A client that is not yet connected (to observe connect_error); tracked for closeAll(). */
export function makeClient(c: Cluster, userId: string, tokenValue: string, opts: Partial<ManagerOptions & SocketOptions> = {}): E2EClient {
  const socket = io(c.baseUrl, {
    auth: { token: tokenValue },
    withCredentials: true,
    forceNew: true,
    reconnection: false,
    timeout: 10000,
    ...opts,
  });
  open.add(socket);
  const cl: E2EClient = {
    userId,
    socket,
    counts: new Map(),
    messages: [],
    arrivedAt: new Map(),
    connects: [],
    disconnects: [],
    connectErrors: [],
    server: () => serverOf(socket),
    close: () => {
      socket.disconnect();
      open.delete(socket);
    },
  };
  socket.on('message', (m: Received) => {
    cl.counts.set(m.id, (cl.counts.get(m.id) ?? 0) + 1);
    cl.messages.push(m);
    if (!cl.arrivedAt.has(m.id)) cl.arrivedAt.set(m.id, Date.now());
  });
  socket.on('connect', () => cl.connects.push({ at: Date.now(), recovered: socket.recovered, server: serverOf(socket) }));
  socket.on('disconnect', (reason) => cl.disconnects.push({ at: Date.now(), reason }));
  socket.on('connect_error', (e) => cl.connectErrors.push({ at: Date.now(), message: e.message }));
  return cl;
}

/** Connects a client through the balancer; rejects with the connect_error (or a timeout). */
export async function connectClient(
  c: Cluster,
  userId: string,
  opts: Partial<ManagerOptions & SocketOptions> = {},
  timeoutMs = 15000,
): Promise<E2EClient> {
  const cl = makeClient(c, userId, await c.token(userId), opts);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${userId}: connect timeout`)), timeoutMs);
    cl.socket.once('connect', () => {
      clearTimeout(t);
      resolve();
    });
    if (!opts.reconnection) {
      cl.socket.once('connect_error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    }
  });
  return cl;
}

/** Connects many clients, `parallel` at a time. */
export async function connectMany(
  c: Cluster,
  userIds: string[],
  opts: Partial<ManagerOptions & SocketOptions> = {},
  parallel = 20,
): Promise<E2EClient[]> {
  const out: E2EClient[] = new Array(userIds.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, userIds.length) }, async () => {
      while (next < userIds.length) {
        const i = next++;
        out[i] = await connectClient(c, userIds[i], opts);
      }
    }),
  );
  return out;
}

/** Disconnects every client opened here. */
export function closeAll(): void {
  for (const s of open) s.disconnect();
  open.clear();
}

/** emitWithAck with a timeout; never rejects: a failure becomes { ok: false, error }. */
export async function ask(
  socket: Socket,
  event: string,
  ...args: unknown[]
): Promise<{ ok: boolean; error?: { code: string; message: string }; [k: string]: unknown }> {
  try {
    return await socket.timeout(10000).emitWithAck(event, ...args);
  } catch (e) {
    return { ok: false, error: { code: 'client', message: (e as Error).message } };
  }
}

/** Messages (by id) counted more than once by any client. */
export function duplicates(clients: E2EClient[]): number {
  let n = 0;
  for (const cl of clients) for (const v of cl.counts.values()) if (v > 1) n += v - 1;
  return n;
}

/** Percentile of a list of numbers (nearest rank). */
export function pct(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `cond()` holds (polled every 25 ms); rejects after `ms` naming `what`. */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timeout (${ms} ms) waiting for ${what}`);
    await sleep(25);
  }
}

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One HTTP request (no agent, no keep-alive); status 0 when the connection failed. */
export function request(
  method: string,
  url: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
  timeoutMs = 10000,
): Promise<HttpResult> {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      {
        method,
        headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '', headers: {} }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** POST /api/v1/publish through the balancer. */
export function publish(c: Cluster, body: Record<string, unknown>): Promise<HttpResult> {
  return request('POST', `${c.baseUrl}/api/v1/publish`, JSON.stringify(body), {
    authorization: `Bearer ${c.apiKey}`,
    'content-type': 'application/json',
  });
}

/**
 * A websocket client pinned by the balancer to `server` (gw1, gw2, ...): it sends HAProxy's
 * RTGSRV cookie itself, so it stays there (helpers such as senders and observers that must not be
 * on the gateway a scenario kills).
 */
export function pinnedClient(
  c: Cluster,
  userId: string,
  server: string,
  opts: Partial<ManagerOptions & SocketOptions> = {},
): Promise<E2EClient> {
  return connectClient(c, userId, {
    transports: ['websocket'],
    withCredentials: false,
    extraHeaders: { cookie: `RTGSRV=${server}` },
    ...opts,
  });
}

export interface Traffic {
  /** Acknowledged messages: id, room, when the ack came. */
  acked: Array<{ id: string; room: string; at: number; seq: number; sender: string }>;
  /** Failed acks (error answers or client-side failures), with when they happened. */
  failed: Array<{ at: number; sender: string; error: string }>;
  /** Stops every sender loop and waits for the messages in flight. */
  stop(): Promise<void>;
}

/**
 * Continuous room traffic: each sender sends to `rooms` in turn, one message at a time (ack
 * awaited), pausing `intervalMs` in between (kept under the per-socket rate limit). Bounded by
 * `maxMs` even when stop() is never called.
 */
export function startTraffic(senders: E2EClient[], rooms: string[], intervalMs: number, maxMs = 60000): Traffic {
  let stopped = false;
  const t: Traffic = { acked: [], failed: [], stop: async () => undefined };
  const end = Date.now() + maxMs;
  let seq = 0;
  const loops = senders.map(async (s, si) => {
    let k = 0;
    while (!stopped && Date.now() < end) {
      const room = rooms[(k++ + si) % rooms.length];
      const n = seq++;
      const a = await ask(s.socket, 'message', { roomId: room, text: `traffic ${n}`, data: { seq: n } });
      if (a.ok) t.acked.push({ id: a.id as string, room, at: Date.now(), seq: n, sender: s.userId });
      else t.failed.push({ at: Date.now(), sender: s.userId, error: `${a.error?.code}: ${a.error?.message}` });
      await sleep(intervalMs);
    }
  });
  t.stop = async () => {
    stopped = true;
    await Promise.all(loops);
  };
  return t;
}

/**
 * ask() that retries transient failures (`unavailable`, a client-side timeout or disconnect) up
 * to `tries` times, 500 ms apart: for an external cluster that someone else disturbs meanwhile
 * (scripts/kind-e2e.sh deletes a gateway pod and the Redis pod while the suite runs).
 */
export async function askRetry(socket: Socket, event: string, arg: unknown, tries = 20): ReturnType<typeof ask> {
  let a = await ask(socket, event, arg);
  for (let i = 1; i < tries && !a.ok && ['unavailable', 'client'].includes(a.error?.code ?? ''); i++) {
    await sleep(500);
    a = await ask(socket, event, arg);
  }
  return a;
}
