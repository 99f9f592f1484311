/**
 * Presence on one redis-server.
 *
 *  1. Transitions/s, driving the presence service layer in this process (`Presence` over
 *     `RedisPresence`: exactly the calls a gateway makes per socket connect/disconnect and a
 *     sweeper makes per due offline, including the exactly-once announcement into the adapter
 *     stream), with C calls in flight: N users connect (N online transitions), disconnect (N
 *     pending offlines), then one sweep decides and announces the N offlines. The adapter stream
 *     must then hold exactly 2N announcements (checked).
 *  2. Bulk lookup latency for 1,000 users (half online): `get-presence` with 1,000 ids through a
 *     real gateway process and a socket.io-client ack round trip, against bare Socket.IO (same
 *     options and adapter) answering the same lookup with one MGET, alternating lookups between
 *     the two; and the raw `RedisPresence.get` call in this process. L sequential lookups each
 *     after a warm-up, p50/p90/p99. Target: gateway p99 under 5 ms.
 *
 * Runs inside the suite: `BENCH_ONLY=presence npm run bench`. The numbers also go to .bench/presence.json.
 */
import path from 'path';
import { performance } from 'perf_hooks';
import { Registry } from 'prom-client';
import { Server } from 'socket.io';
import { io as ioc, Socket as ClientSocket } from 'socket.io-client';
import { Keys } from '../services/core/redis/keys';
import { createLogger } from '../services/core/platform/logger';
import { createMetrics } from '../services/core/platform/metrics';
import { Presence } from '../services/core/presence/presence';
import { RedisPresence } from '../services/core/presence/redis';
import { redisAnnouncer } from '../services/core/adapter/announcer';
import { Shards } from '../services/core/adapter/shards';
import { createRedis, RedisClient, waitReady } from '../services/core/redis/client';
import { defineScripts } from '../services/core/redis/scripts';
import { envInt, Row, Stats, stats, writeBenchJson } from './lib/report';
import { Cluster, startCluster } from './lib/targets';
import type { Benchmark, BenchContext, BenchResult } from './lib/types';

const TARGET_P99_MS = 5;

interface Params {
  users: number;
  concurrency: number;
  lookupUsers: number;
  lookups: number;
  warmup: number;
}

function params(): Params {
  return {
    users: envInt('BENCH_PRESENCE_USERS', 5000, 1, 1_000_000),
    concurrency: envInt('BENCH_PRESENCE_CONCURRENCY', 32, 1, 10000),
    lookupUsers: envInt('BENCH_PRESENCE_LOOKUP_USERS', 1000, 1, 1000),
    lookups: envInt('BENCH_PRESENCE_LOOKUPS', 500, 1, 100000),
    warmup: envInt('BENCH_PRESENCE_WARMUP', 50, 0, 100000),
  };
}

function abortIf(signal: AbortSignal): void {
  if (signal.aborted) throw new Error('aborted (benchmark time bound reached)');
}

/** Runs `fn(i)` for i < n with at most `c` in flight; resolves with the elapsed milliseconds. */
async function pool(n: number, c: number, fn: (i: number) => Promise<unknown>, signal: AbortSignal): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(c, n) }, async () => {
      while (next < n) {
        abortIf(signal);
        await fn(next++);
      }
    }),
  );
  return performance.now() - t0;
}

interface Numbers {
  params: Params;
  transitions: {
    connectMs: number;
    disconnectMs: number;
    sweepMs: number;
    onlinePerSec: number;
    disconnectsPerSec: number;
    offlinePerSec: number;
    transitionsPerSec: number;
    announced: number;
    expected: number;
  };
  lookup: { gateway: Stats; bare: Stats; store: Stats; online: number; targetP99Ms: number; targetMet: boolean };
}

async function run(ctx: BenchContext, signal: AbortSignal): Promise<Numbers> {
  const p = params();
  const redis = await ctx.redis();
  const prefix = `bp${Date.now().toString(36)}`;
  const keys = new Keys(prefix);
  const client: RedisClient = createRedis(redis.url, { role: 'bench', failFast: true });
  defineScripts(client);
  const io = new Server(); // no listener: announcements go straight to the adapter stream in Redis
  let gw: Cluster | undefined;
  let bare: Cluster | undefined;
  const sockets: ClientSocket[] = [];
  try {
    await waitReady(client);
    const store = new RedisPresence(client, keys, redisAnnouncer(client, new Shards(prefix, 16), { maxLen: 1000, ttlMs: 120_000 }));
    const metrics = createMetrics(new Registry(), { defaults: false });
    const presence = new Presence(store, io, {
      pod: `${prefix}-bench`,
      graceMs: 0,
      logger: createLogger('bench', 'silent', 'bench'),
      metrics,
    });
    const uid = (i: number) => `u${i}`;
    const sid = (i: number) => `s${i}`;

    // 1. transitions
    ctx.log(`presence: ${p.users} users connect, disconnect, then one sweep (${p.concurrency} in flight)`);
    const connectMs = await pool(p.users, p.concurrency, (i) => presence.connected('/', uid(i), sid(i)), signal);
    const deadline = Date.now();
    const disconnectMs = await pool(
      p.users,
      p.concurrency,
      (i) => presence.disconnected('/', uid(i), sid(i), `${prefix}-bench`, deadline),
      signal,
    );
    const t0 = performance.now();
    const offline = await presence.sweep();
    const sweepMs = performance.now() - t0;
    const announced = (await metrics.registry.getSingleMetric('realtime_presence_transitions_total')!.get()).values.reduce(
      (a, v) => a + v.value,
      0,
    );
    if (offline !== p.users) throw new Error(`the sweep announced ${offline} offlines, expected ${p.users}`);
    const sec = (n: number, ms: number) => (n * 1000) / ms;
    const transitions = {
      connectMs,
      disconnectMs,
      sweepMs,
      onlinePerSec: sec(p.users, connectMs),
      disconnectsPerSec: sec(p.users, disconnectMs),
      offlinePerSec: sec(p.users, sweepMs),
      transitionsPerSec: sec(2 * p.users, connectMs + disconnectMs + sweepMs),
      announced,
      expected: 2 * p.users,
    };

    // 2. bulk lookups: half of the looked-up users online
    const ids = Array.from({ length: p.lookupUsers }, (_, i) => uid(i));
    await pool(Math.ceil(p.lookupUsers / 2), p.concurrency, (i) => presence.connected('/', uid(i * 2), `l${i}`), signal);
    const storeLat: number[] = [];
    for (let i = 0; i < p.warmup + p.lookups; i++) {
      abortIf(signal);
      const s = performance.now();
      const rows = await store.get('/', ids);
      if (i >= p.warmup) storeLat.push(performance.now() - s);
      if (rows.length !== ids.length) throw new Error(`store lookup returned ${rows.length} rows`);
    }
    // The same lookups through Socket.IO: a gateway, and bare Socket.IO (same options and adapter)
    // answering with one MGET of the same presence views (copied under its own prefix). They
    // alternate, one lookup each in turn, so that both see the same machine: its speed drifts.
    ctx.log('presence: starting a gateway and a bare Socket.IO server for the lookups through Socket.IO');
    gw = await startCluster('gateway', 1, {
      redisUrl: redis.url,
      prefix,
      env: { PRESENCE_GRACE_MS: '60000', RATE_LIMIT_EVENTS_PER_SECOND: '0' },
    });
    bare = await startCluster('bare', 1, { redisUrl: redis.url, prefix: `${prefix}-bare` });
    const views = await client.mget(keys.presenceViews('/', ids));
    const bareViews = new Keys(`${prefix}-bare`).presenceViews('/', ids);
    await client.mset(bareViews.flatMap((k, i) => (views[i] ? [k, views[i] as string] : [])));
    const connect = async (c: Cluster) => {
      const s = ioc(c.servers[0].url, {
        auth: await c.auth('bench-watcher'),
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      sockets.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', reject);
      });
      return s;
    };
    const targets = [
      { sock: await connect(gw), lat: [] as number[], online: 0 },
      { sock: await connect(bare), lat: [] as number[], online: 0 },
    ];
    for (let i = 0; i < p.warmup + p.lookups; i++) {
      for (const t of i % 2 ? [...targets].reverse() : targets) {
        abortIf(signal);
        const s = performance.now();
        const res = (await t.sock.timeout(5000).emitWithAck('get-presence', ids)) as {
          ok: boolean;
          users?: Array<{ status: string }>;
          error?: unknown;
        };
        const ms = performance.now() - s;
        if (!res.ok || res.users?.length !== ids.length) throw new Error(`get-presence failed: ${JSON.stringify(res).slice(0, 200)}`);
        if (i >= p.warmup) t.lat.push(ms);
        t.online = res.users.filter((u) => u.status === 'online').length;
      }
    }
    const [g, b] = targets;
    if (g.online !== b.online) throw new Error(`the gateway saw ${g.online} users online, bare Socket.IO ${b.online}`);
    const gateway = stats(g.lat);
    return {
      params: p,
      transitions,
      lookup: {
        gateway,
        bare: stats(b.lat),
        store: stats(storeLat),
        online: g.online,
        targetP99Ms: TARGET_P99_MS,
        targetMet: gateway.p99 < TARGET_P99_MS,
      },
    };
  } finally {
    for (const s of sockets) s.disconnect();
    await gw?.stop();
    await bare?.stop();
    client.disconnect();
  }
}

function rows(n: Numbers): Row[] {
  const t = n.transitions;
  const l = n.lookup;
  const one = (metric: string, v: number, digits = 0): Row => ({ metric, gateway: v, bare: NaN, digits, noRatio: true });
  return [
    one('online transitions/s (connect)', t.onlinePerSec),
    one('disconnects/s (offline pending)', t.disconnectsPerSec),
    one('offline transitions/s (sweep)', t.offlinePerSec),
    one('transitions/s (connect + disconnect + sweep)', t.transitionsPerSec),
    { metric: `get-presence ${n.params.lookupUsers} ids p50 (ms)`, gateway: l.gateway.p50, bare: l.bare.p50, digits: 2 },
    { metric: `get-presence ${n.params.lookupUsers} ids p90 (ms)`, gateway: l.gateway.p90, bare: l.bare.p90, digits: 2 },
    { metric: `get-presence ${n.params.lookupUsers} ids p99 (ms)`, gateway: l.gateway.p99, bare: l.bare.p99, digits: 2 },
    { metric: `get-presence ${n.params.lookupUsers} ids max (ms)`, gateway: l.gateway.max, bare: l.bare.max, digits: 2 },
    one('presence store lookup (RedisPresence.get) p50 (ms)', l.store.p50, 2),
    one('presence store lookup (RedisPresence.get) p99 (ms)', l.store.p99, 2),
  ];
}

function notes(n: Numbers): string[] {
  const l = n.lookup;
  return [
    `transitions: Presence + RedisPresence driven in the benchmark process (${n.params.users} users, ${n.params.concurrency} calls in flight, one redis-server); "gateway" column = the value, no bare counterpart`,
    `announcements in the adapter stream: ${n.transitions.announced} for ${n.transitions.expected} transitions (${n.transitions.announced === n.transitions.expected ? 'exactly once' : 'MISMATCH'})`,
    `lookups: "gateway" = a real gateway process, "bare" = bare Socket.IO with the same options and adapter answering with one MGET of the same presence views (no auth, validation, metrics); both through socket.io-client ack round trips, alternating, ${n.params.lookups} each after ${n.params.warmup} warm-up, ${l.online}/${n.params.lookupUsers} online`,
    `presence store lookup: the RedisPresence.get call in this process (what get-presence does in Redis: one MGET)`,
    `target: gateway bulk lookup p99 < ${l.targetP99Ms} ms: ${l.gateway.p99.toFixed(2)} ms ${l.targetMet ? 'PASS' : 'FAIL'} (bare Socket.IO doing the same MGET: p99 ${l.bare.p99.toFixed(2)} ms)`,
  ];
}

export const presence: Benchmark = {
  name: 'presence',
  description:
    'presence transitions/s (service layer on one redis-server) and bulk get-presence latency for 1,000 users (gateway + socket.io-client, and raw store)',
  timeoutMs: 180000,
  async run(ctx, signal): Promise<BenchResult> {
    const n = await run(ctx, signal);
    const file = writeBenchJson(ctx, 'presence', n);
    ctx.log(`presence: numbers in ${path.relative(process.cwd(), file) || file}`);
    return {
      title: 'Presence: transitions and bulk lookups (one redis-server)',
      params: { ...n.params },
      rows: rows(n),
      notes: notes(n),
      data: { transitions: n.transitions, lookup: n.lookup },
    };
  },
};
