/**
 * Storms (issue #16, item 4): what it costs to get everyone (back) on.
 *
 * 2 server processes on one Redis, BENCH_STORM_TOTAL clients (10,000), every one its own user,
 * in rooms of BENCH_STORM_ROOM_SIZE (20) spread over both processes (raw websocket clients,
 * bench/lib/sio-client.ts, which send what socket.io-client v4 sends: `{ pid, offset }` on a
 * reconnect). Two phases, for the gateway and for bare Socket.IO on the streams adapter
 * (bench/bare-server.ts, connection state recovery on):
 *
 *  - `fresh`: every client starts connecting at the same moment, half to each process; a client
 *    whose attempt fails tries again with socket.io-client's default back-off (1 s doubling up to
 *    5 s, randomization 0.5). Time until all are connected, refusals by reason, Redis commands
 *    per connect.
 *  - `kill`: each room gets one message (every client now has an offset), process 1 is SIGKILLed;
 *    its clients notice the close and reconnect, with the same back-off from its first step (as
 *    socket.io-client does after a transport close), to the survivor (what a balancer does once
 *    the dead pod is out). Meanwhile the survivor's clients send one more message to every room.
 *    Time from the kill until every moved client is connected and recovered (same socket id, as
 *    socket.io-client reports `recovered`), reconnects that came back not recovered, refusals by
 *    reason, Redis commands per reconnect, and messages lost (the storm message of a moved
 *    client's room neither replayed nor delivered live) or duplicated.
 *
 * Targets (gateway): all back within 15 s, 0 lost. `BENCH_ONLY=storm npm run bench`; run it with
 * `ulimit -n 65536` (this process holds every client socket).
 */
import { commandCounts, diffCounts, perUnit, total } from './lib/redis-stats';
import { openFilesLimit, sleep } from './lib/proc';
import { envInt, percentile, Row } from './lib/report';
import { SioClient } from './lib/sio-client';
import { Cluster, Kind, KINDS, startCluster } from './lib/targets';
import type { Benchmark, BenchContext, BenchResult } from './lib/types';

interface Params {
  total: number;
  roomSize: number;
  inFlight: number;
}

/** socket.io-client's default reconnection back-off (engine.io-client Backoff: min 1 s, max 5 s, factor 2, jitter 0.5). */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  let ms = 1000 * Math.pow(2, attempt);
  const deviation = Math.floor(random() * 0.5 * ms);
  ms = (Math.floor(random() * 10) & 1) === 0 ? ms - deviation : ms + deviation;
  return Math.min(ms, 5000);
}

interface Member {
  user: string;
  room: string;
  server: number;
  client?: SioClient;
  /** Message texts received (each phase's texts are unique per room). */
  got: Map<string, number>;
  recovered?: boolean;
  backAt?: number;
}

interface Phase {
  ms: number;
  clients: number;
  refusals: Record<string, number>;
  attempts: number;
  redisCommandsPer: number;
  redisPer: Record<string, number>;
  recovered?: number;
  notRecovered?: number;
  lost?: number;
  duplicated?: number;
  p50Ms?: number;
  p99Ms?: number;
}

/** Reason of a failed connect attempt, as a label. */
function reason(e: Error): string {
  const m = e.message;
  if (m.startsWith('connect_error: ')) return m.slice(15, 60);
  if (/Unexpected server response: (\d+)/.test(m)) return `http ${/(\d{3})/.exec(m)![1]}`;
  if (/ECONNREFUSED/.test(m)) return 'refused (ECONNREFUSED)';
  if (/ECONNRESET|socket hang up/.test(m)) return 'reset';
  if (/timeout/i.test(m)) return 'timeout';
  return m.slice(0, 40);
}

/** Connects `m` to `url`, retrying with the default back-off; resolves with the time it took and the attempts. */
async function connectWithBackoff(
  cluster: Cluster,
  m: Member,
  url: string,
  refusals: Record<string, number>,
  deadline: number,
  firstDelay: boolean,
): Promise<number> {
  let attempts = 0;
  for (let attempt = 0; ; attempt++) {
    if (firstDelay || attempt > 0) await sleep(backoffMs(firstDelay ? attempt : attempt - 1));
    if (Date.now() > deadline) throw new Error(`${m.user}: not connected before the deadline (${attempts} attempts)`);
    attempts++;
    const prev = m.client;
    try {
      const auth = await cluster.auth(m.user);
      const c = await SioClient.connect(url, {
        auth: prev ? prev.recoveryAuth(auth) : auth,
        trackOffset: true,
        timeoutMs: 20000,
        onEvent: (raw) => {
          if (!raw.startsWith('42["message"')) return;
          const text = /"text":"([^"]+)"/.exec(raw)?.[1];
          if (text) m.got.set(text, (m.got.get(text) ?? 0) + 1);
        },
      });
      if (prev) {
        m.recovered = c.sid === prev.sid;
        // socket.io-client keeps its offset across the reconnect (the server sends newer ones)
        if (c.lastOffset === undefined) c.lastOffset = prev.lastOffset;
        if (!c.pid) c.pid = prev.pid;
      }
      m.client = c;
      return attempts;
    } catch (e) {
      const r = reason(e as Error);
      refusals[r] = (refusals[r] ?? 0) + 1;
    }
  }
}

async function runKind(kind: Kind, p: Params, ctx: BenchContext, signal: AbortSignal): Promise<{ fresh: Phase; kill: Phase }> {
  const redis = await ctx.redis();
  const tag = Math.random().toString(36).slice(2, 8);
  ctx.log(`storm/${kind}: starting 2 server processes`);
  const cluster = await startCluster(kind, 2, {
    redisUrl: redis.url,
    prefix: `bst${kind[0]}${tag}`,
    env: { RATE_LIMIT_EVENTS_PER_SECOND: '1000' },
  });
  const rooms = Math.ceil(p.total / p.roomSize);
  const members: Member[] = Array.from({ length: p.total }, (_, i) => ({
    user: `st-${tag}-u${i}`,
    room: `st-${tag}-r${i % rooms}`,
    server: Math.floor(i / rooms) % 2, // a room's members alternate between the processes
    got: new Map(),
  }));
  try {
    // --- fresh: everyone at once ---
    const refusals: Record<string, number> = {};
    const before = await commandCounts(redis.url);
    const t0 = Date.now();
    let attempts = 0;
    let next = 0;
    // Every client starts now; `inFlight` bounds this process's own sockets being opened at once.
    await Promise.all(
      Array.from({ length: Math.min(p.inFlight, p.total) }, async () => {
        while (next < members.length) {
          if (signal.aborted) throw new Error('aborted (benchmark time bound reached)');
          const m = members[next++];
          const n = await connectWithBackoff(cluster, m, cluster.servers[m.server].url, refusals, t0 + 300000, false);
          attempts += n;
        }
      }),
    );
    const freshMs = Date.now() - t0;
    const freshCmds = diffCounts(before, await commandCounts(redis.url));
    const fresh: Phase = {
      ms: freshMs,
      clients: p.total,
      refusals,
      attempts,
      redisCommandsPer: total(freshCmds) / p.total,
      redisPer: perUnit(freshCmds, p.total),
    };
    ctx.log(`storm/${kind}: fresh storm: ${p.total} connected in ${(freshMs / 1000).toFixed(1)} s (${attempts} attempts)`);

    // Every room: its members join, then one message each, so every client holds an offset.
    const byRoom = new Map<string, Member[]>();
    for (const m of members) byRoom.set(m.room, [...(byRoom.get(m.room) ?? []), m]);
    let i = 0;
    await Promise.all(
      Array.from({ length: 200 }, async () => {
        while (i < members.length) {
          const m = members[i++];
          const a = (await m.client!.emitWithAck('join-room', m.room)) as { ok?: boolean };
          if (!a?.ok) throw new Error(`storm/${kind}: join-room answered ${JSON.stringify(a)}`);
        }
      }),
    );
    const survivorSenders = [...byRoom.entries()].map(([room, ms]) => ({ room, sender: ms.find((m) => m.server === 1)! }));
    /** One message to every room (text `<phase>:<room>`); the rooms whose message was acknowledged. */
    const send = async (phase: string) => {
      const sent: Array<{ room: string; text: string }> = [];
      let k = 0;
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          while (k < survivorSenders.length) {
            const { room, sender } = survivorSenders[k++];
            const text = `${phase}:${room}`;
            const a = (await sender.client!.emitWithAck('message', { roomId: room, text })) as { ok?: boolean };
            if (a?.ok) sent.push({ room, text });
          }
        }),
      );
      return sent;
    };
    await send('before');
    await sleep(1000);

    // --- kill: process 1 dies; its clients come back on process 2 ---
    const moved = members.filter((m) => m.server === 0);
    const killRefusals: Record<string, number> = {};
    const before2 = await commandCounts(redis.url);
    const tKill = Date.now();
    cluster.servers[0].proc.proc.kill('SIGKILL');
    let killAttempts = 0;
    const back = Promise.all(
      moved.map(async (m) => {
        // the close reaches the client at once (the kernel resets the connections of a dead process)
        const n = await connectWithBackoff(cluster, m, cluster.servers[1].url, killRefusals, tKill + 300000, true);
        killAttempts += n;
        m.backAt = Date.now();
      }),
    );
    const stormSent = await send('storm');
    await back;
    const killMs = Math.max(...moved.map((m) => m.backAt!)) - tKill;
    await sleep(2000); // live deliveries still on their way
    const killCmds = diffCounts(before2, await commandCounts(redis.url));
    const textByRoom = new Map(stormSent.map((x) => [x.room, x.text]));
    let lost = 0;
    let duplicated = 0;
    for (const m of moved) {
      const text = textByRoom.get(m.room);
      if (!text) continue;
      const n = m.got.get(text) ?? 0;
      if (n === 0) lost++;
      if (n > 1) duplicated++;
    }
    const times = moved.map((m) => m.backAt! - tKill).sort((a, b) => a - b);
    const kill: Phase = {
      ms: killMs,
      clients: moved.length,
      refusals: killRefusals,
      attempts: killAttempts,
      redisCommandsPer: total(killCmds) / moved.length,
      redisPer: perUnit(killCmds, moved.length),
      recovered: moved.filter((m) => m.recovered).length,
      notRecovered: moved.filter((m) => !m.recovered).length,
      lost,
      duplicated,
      p50Ms: percentile(times, 50),
      p99Ms: percentile(times, 99),
    };
    ctx.log(
      `storm/${kind}: after the SIGKILL ${moved.length} clients back in ${(killMs / 1000).toFixed(1)} s, ${kill.recovered} recovered, ${lost} of them lost the storm message of their room (${stormSent.length} rooms got one)`,
    );
    return { fresh, kill };
  } finally {
    for (const m of members) m.client?.terminate();
    await cluster.stop();
  }
}

const refusalText = (r: Record<string, number>) =>
  Object.entries(r)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

export const storm: Benchmark = {
  name: 'storm',
  description: 'connect and reconnect storms: 10,000 clients at once on 2 processes, then one SIGKILLed (gateway vs bare Socket.IO)',
  timeoutMs: 1200000,
  async run(ctx, signal): Promise<BenchResult> {
    const p: Params = {
      total: envInt('BENCH_STORM_TOTAL', 10000, 100, 100000),
      roomSize: envInt('BENCH_STORM_ROOM_SIZE', 20, 2, 1000),
      inFlight: envInt('BENCH_STORM_IN_FLIGHT', 10000, 1, 100000),
    };
    const notes: string[] = [];
    const need = p.total + 1000;
    if (openFilesLimit() < need)
      throw new Error(`storm: ulimit -n is ${openFilesLimit()}, needs about ${need}: run it with \`ulimit -n 65536\``);
    const r = {} as Record<Kind, { fresh: Phase; kill: Phase }>;
    for (const kind of KINDS) {
      r[kind] = await runKind(kind, p, ctx, signal);
      await sleep(1000);
    }
    const g = r.gateway;
    const b = r.bare;
    const rows: Row[] = [
      { metric: `fresh storm: ${p.total} clients connected (s)`, gateway: g.fresh.ms / 1000, bare: b.fresh.ms / 1000, digits: 1 },
      { metric: 'fresh storm: connects/s', gateway: p.total / (g.fresh.ms / 1000), bare: p.total / (b.fresh.ms / 1000) },
      { metric: 'fresh storm: failed attempts', gateway: g.fresh.attempts - p.total, bare: b.fresh.attempts - p.total, noRatio: true },
      { metric: 'fresh storm: Redis commands per connect', gateway: g.fresh.redisCommandsPer, bare: b.fresh.redisCommandsPer, digits: 1 },
      {
        metric: `SIGKILL: ${g.kill.clients} clients back and recovered (s)`,
        gateway: g.kill.ms / 1000,
        bare: b.kill.ms / 1000,
        digits: 1,
        gatewayTarget: { max: 15 },
      },
      { metric: 'SIGKILL: reconnect time p50 (s)', gateway: g.kill.p50Ms! / 1000, bare: b.kill.p50Ms! / 1000, digits: 1 },
      { metric: 'SIGKILL: reconnect time p99 (s)', gateway: g.kill.p99Ms! / 1000, bare: b.kill.p99Ms! / 1000, digits: 1 },
      { metric: 'SIGKILL: recovered', gateway: g.kill.recovered!, bare: b.kill.recovered!, noRatio: true },
      { metric: 'SIGKILL: came back not recovered', gateway: g.kill.notRecovered!, bare: b.kill.notRecovered!, noRatio: true },
      {
        metric: 'SIGKILL: failed attempts',
        gateway: g.kill.attempts - g.kill.clients,
        bare: b.kill.attempts - b.kill.clients,
        noRatio: true,
      },
      { metric: 'SIGKILL: Redis commands per reconnect', gateway: g.kill.redisCommandsPer, bare: b.kill.redisCommandsPer, digits: 1 },
      { metric: 'SIGKILL: storm messages lost', gateway: g.kill.lost!, bare: b.kill.lost!, noRatio: true, gatewayTarget: { max: 0 } },
      { metric: 'SIGKILL: storm messages duplicated', gateway: g.kill.duplicated!, bare: b.kill.duplicated!, noRatio: true },
    ];
    const top = (x: Record<string, number>) =>
      Object.entries(x)
        .sort((a, c) => c[1] - a[1])
        .slice(0, 8)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    notes.push(
      `${p.total} clients (raw websocket, each its own user, rooms of ${p.roomSize}), 2 processes on one Redis; socket.io-client's default back-off on failures (1-5 s, randomized); the moved clients reconnect straight to the survivor`,
      `refusals, fresh: gateway ${refusalText(g.fresh.refusals)}; bare ${refusalText(b.fresh.refusals)}`,
      `refusals, after the SIGKILL: gateway ${refusalText(g.kill.refusals)}; bare ${refusalText(b.kill.refusals)}`,
      `Redis commands per connect (fresh): gateway ${top(g.fresh.redisPer)}; bare ${top(b.fresh.redisPer)}`,
      `Redis commands per reconnect (SIGKILL, with the storm messages): gateway ${top(g.kill.redisPer)}; bare ${top(b.kill.redisPer)}`,
    );
    return { title: 'Connect and reconnect storms (2 processes)', params: { ...p }, rows, notes, data: { gateway: g, bare: b } };
  },
};
