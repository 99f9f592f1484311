import type { Socket as ClientSocket } from 'socket.io-client';
import { client, metricValue, RunningGateway, startGateways, token, until } from '../helpers/cluster';

// What the rebalancing and the paced-drain tests share: gateways with short heartbeats, tracked
// clients (connects and whether recovered, disconnect reasons, messages by id, and the flaps a
// user would see: user-joined/user-left of a user who stayed, an `offline` of one), acknowledged
// traffic, and the delivery verdict.

export const HB = 250;
const REBALANCE = { HEARTBEAT_INTERVAL_MS: String(HB), REBALANCE_ENABLED: 'true', REBALANCE_RATE_PERCENT: '10' };
export const FAST = {
  reconnection: true,
  reconnectionDelay: 50,
  reconnectionDelayMax: 300,
  randomizationFactor: 0.5,
  reconnectionAttempts: 200,
};
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Tracked {
  userId: string;
  room: string;
  socket: ClientSocket;
  connects: boolean[];
  /** When each connect after the first happened (ms). */
  reconnectedAt: number[];
  disconnects: string[];
  disconnectedAt: number[];
  messages: Map<string, number>;
  /** user-joined / user-left / presence offline seen after `arm()`. */
  flaps: string[];
}

export async function gateway(
  redisUrl: string,
  prefix: string,
  name: string,
  env: Record<string, string> = {},
): Promise<RunningGateway & { stop(): Promise<void> }> {
  const g = await startGateways(1, { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix, POD_NAME: `${prefix}-${name}`, ...REBALANCE, ...env });
  return { ...g.gateways[0], stop: g.stop };
}

/** `n` clients through `url`, each in one of `rooms` rooms (websocket-only and polling-first alternately, or `transports`). */
export async function clients(
  url: string,
  prefix: string,
  n: number,
  rooms: number,
  opts: Record<string, unknown> | ((i: number) => Record<string, unknown>) = {},
): Promise<Tracked[]> {
  const out: Tracked[] = [];
  for (let i = 0; i < n; i++) {
    const userId = `${prefix}-u${i}`;
    const transports = i % 2 ? ['polling', 'websocket'] : ['websocket'];
    const socket = client(url, { token: await token(userId) }, { transports, ...FAST, ...(typeof opts === 'function' ? opts(i) : opts) });
    const t: Tracked = {
      userId,
      room: `${prefix}-r${i % rooms}`,
      socket,
      connects: [],
      reconnectedAt: [],
      disconnects: [],
      disconnectedAt: [],
      messages: new Map(),
      flaps: [],
    };
    socket.on('connect', () => {
      if (t.connects.length) t.reconnectedAt.push(Date.now());
      t.connects.push(socket.recovered);
    });
    socket.on('disconnect', (reason) => {
      t.disconnects.push(reason);
      t.disconnectedAt.push(Date.now());
    });
    socket.on('message', (m: { id: string }) => t.messages.set(m.id, (t.messages.get(m.id) ?? 0) + 1));
    out.push(t);
  }
  await until(() => out.every((t) => t.socket.connected), 20000, 'every client connected');
  for (const t of out) expect(await t.socket.emitWithAck('join-room', t.room)).toMatchObject({ ok: true });
  // every user watches the presence of the next one
  for (let i = 0; i < out.length; i++) await out[i].socket.emitWithAck('presence:subscribe', [out[(i + 1) % out.length].userId]);
  return out;
}

/** From now on, any user-joined / user-left of a tracked user and any `offline` counts as a flap. */
export function arm(all: Tracked[]): void {
  const ids = new Set(all.map((t) => t.userId));
  for (const t of all) {
    const note = (what: string) => (e: { userId: string }) => ids.has(e.userId) && t.flaps.push(`${what} ${e.userId}`);
    t.socket.on('user-joined', note('joined'));
    t.socket.on('user-left', note('left'));
    t.socket.on('presence', (e: { userId: string; status: string }) => e.status === 'offline' && t.flaps.push(`offline ${e.userId}`));
  }
}

/**
 * Options of a sending client: socket.io-client's at-least-once emits. A message in flight when the
 * pod closes the connection never reached it (the pod closes only connections that owe no answer,
 * and drops what arrives after the close): the client sends it again after the reconnect.
 */
export const SENDER = { retries: 5, ackTimeout: 5000 };

/** Acknowledged room messages from `senders` (created with SENDER), one at a time each. */
export function traffic(senders: Tracked[]) {
  const acked: Array<{ id: string; room: string }> = [];
  const failed: string[] = [];
  let on = true;
  const loops = senders.map(async (s, k) => {
    for (let n = 0; on; n++) {
      try {
        const a = await s.socket.emitWithAck('message', { roomId: s.room, text: `m${k}-${n}` });
        if (a.ok) acked.push({ id: a.id, room: s.room });
        else failed.push(a.error.code);
      } catch (e) {
        failed.push((e as Error).message);
      }
      await sleep(40);
    }
  });
  return {
    acked,
    failed,
    stop: async () => {
      on = false;
      await Promise.all(loops);
    },
  };
}

export const counts = (gws: RunningGateway[]) => gws.map((g) => g.gateway.ctx.connections());
export const withinBand = (c: number[], tol = 0.2) => {
  const fair = c.reduce((a, b) => a + b, 0) / c.length;
  return c.every((x) => Math.abs(x - fair) <= Math.max(tol * fair, 2));
};
export const total = async (gws: RunningGateway[], name: string) => {
  let n = 0;
  for (const g of gws) n += await metricValue(g.metrics, name);
  return n;
};

/** Every acked message reached every member of its room exactly once: [lost, duplicated]. */
export async function delivery(all: Tracked[], acked: Array<{ id: string; room: string }>): Promise<[number, number]> {
  const missing = () => all.reduce((n, t) => n + acked.filter((a) => a.room === t.room && !t.messages.has(a.id)).length, 0);
  await until(() => missing() === 0, 10000, 'every acked message delivered').catch(() => undefined);
  const dup = all.reduce((n, t) => n + [...t.messages.values()].filter((v) => v > 1).length, 0);
  return [missing(), dup];
}

/** The most events of `times` within any `windowMs`. */
export function peak(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}
