/**
 * Scale-out: does a room message cost what its audience costs, or what the cluster costs?
 *
 * 1, 2 and 4 server processes (BENCH_SCALE_PODS) on one Redis; 1,000 rooms of 4 members
 * (BENCH_SCALE_ROOMS, BENCH_SCALE_MEMBERS), every member its own raw websocket client, room r's
 * members half on pod r mod N and half on pod (r + 1) mod N (each room on at most 2 pods, every pod
 * holding the same number of members); the same 4,000 clients whatever N. A fixed offered rate
 * (BENCH_SCALE_RATE msg/s, each message sent by a member of its room and delivered to all 4) for
 * BENCH_SCALE_SECONDS, after an idle window of the same length with the same clients connected.
 *
 * Cluster CPU per message: user + system time from /proc of every server process, and of Redis,
 * reported separately and together, over the load window, per message acked; and the same above
 * the idle window's rate (what the traffic itself costs, without the pods' heartbeats, sweeps and
 * pings). Then each N's cost over the 1-pod cost, for the gateway and for bare Socket.IO on the
 * streams adapter (bench/bare-server.ts) with the same clients and schedule.
 *
 * Also per message: the servers' wake-ups (voluntary context switches of their main threads) and
 * preemptions, and the machine's price of a wake-up (lib/wakeup.ts: a trivial Node echo at the
 * offered rate and at that rate over the largest N). BENCH_SCALE_WEAK=1 offers rate x N instead
 * (the same load per pod).
 *
 * `BENCH_ONLY=scaleout npm run bench`; numbers also in .bench/scaleout.json. BENCH_PERF=1 adds a
 * second, profiled load window at the largest N (perf CPU-time samples of the servers and Redis;
 * the measured window is never profiled).
 */
import fs from 'fs';
import path from 'path';
import { aboveIdle, cpuWindow, type CpuWindow } from './lib/cpu';
import { formatInclusive, formatPerf, perfAvailable, perfInclusive, perfRecord, perfSummary, removePerfMaps } from './lib/perf';
import { metricsText, sum } from './lib/metrics';
import { sleep } from './lib/proc';
import { commandCounts, diffCounts, perUnit, total } from './lib/redis-stats';
import { envInt, Row, writeBenchJson } from './lib/report';
import { RoomLoad, twoPodLayout, type LoadNumbers } from './lib/room-load';
import { assertAlive, Kind, KINDS, kindOrder, startCluster } from './lib/targets';
import { wakeupCost, type WakeupPoint } from './lib/wakeup';
import type { Benchmark, BenchContext, BenchResult } from './lib/types';

/** The code whose inclusive time the profile lists: the services, Socket.IO, Engine.IO, ws, ioredis, prom-client. */
export const INCLUSIVE = /\/dist\/services\/|node_modules\/(socket\.io|engine\.io|ws|ioredis|redis-parser|prom-client|@socket\.io)/;

interface Params {
  pods: number[];
  rooms: number;
  members: number;
  rate: number;
  seconds: number;
  payloadBytes: number;
  order: Kind[];
  perf: boolean;
  /** Pod counts that get a profiled window with BENCH_PERF=1. */
  perfPods: number[];
  /** BENCH_SCALE_WEAK=1: the offered rate grows with the pods (rate x N), the same load per pod. */
  weak: boolean;
}

function params(): Params {
  const order = kindOrder();
  const pods = (process.env.BENCH_SCALE_PODS ?? '1,2,4').split(',').map((s) => Number(s.trim()));
  if (!pods.length || pods.some((n) => !Number.isInteger(n) || n < 1 || n > 8) || pods[0] !== 1)
    throw new Error('BENCH_SCALE_PODS must be a comma-separated list of pod counts (1-8) starting with 1, e.g. "1,2,4"');
  return {
    pods,
    rooms: envInt('BENCH_SCALE_ROOMS', 1000, 1, 20000),
    members: envInt('BENCH_SCALE_MEMBERS', 4, 2, 8),
    rate: envInt('BENCH_SCALE_RATE', 400, 1, 100000),
    seconds: envInt('BENCH_SCALE_SECONDS', 20, 2, 600),
    payloadBytes: envInt('BENCH_PAYLOAD_BYTES', 128, 0, 16000),
    order,
    perf: process.env.BENCH_PERF === '1' && perfAvailable(),
    perfPods: (process.env.BENCH_SCALE_PERF_PODS ?? String(pods[pods.length - 1])).split(',').map((x) => Number(x.trim())),
    weak: process.env.BENCH_SCALE_WEAK === '1',
  };
}

export interface ScaleRun {
  kind: Kind;
  pods: number;
  idle: { servers: CpuWindow; redis: CpuWindow };
  load: { servers: CpuWindow; redis: CpuWindow };
  traffic: LoadNumbers;
  /** CPU us per acked message. */
  perMessageUs: { servers: number; redis: number; total: number; serversAboveIdle: number; redisAboveIdle: number; totalAboveIdle: number };
  redisCommandsPerMessage: Record<string, number>;
  redisCommandsPerMessageTotal: number;
  otherPackets: Record<string, number>;
  /** Gateway: room broadcasts the pods received live over the load window (realtime_adapter_entries_received_total, all pods) per message acked; NaN for bare. */
  entriesReceivedPerMessage: number;
  profile?: string;
}

/** One system at one pod count: fresh processes, the clients, warm-up, idle window, load window. */
export async function runScale(
  kind: Kind,
  pods: number,
  p: Pick<Params, 'rooms' | 'members' | 'rate' | 'seconds' | 'payloadBytes'> & { perf?: boolean },
  ctx: BenchContext,
  signal: AbortSignal,
  redisOverride?: {
    url: string;
    pids: number[];
    env?: Record<string, string>;
    /** Run right before and right after the (unprofiled) load window. */
    aroundLoad?: { before(): Promise<void>; after(): Promise<void> };
  },
): Promise<ScaleRun> {
  const redis = redisOverride ? undefined : await ctx.redis();
  const redisUrl = redisOverride?.url ?? redis!.url;
  const redisPids = redisOverride?.pids ?? [redis!.proc.pid];
  const tag = Math.random().toString(36).slice(2, 8);
  ctx.log(`scaleout/${kind}: ${pods} server process(es), ${p.rooms} rooms x ${p.members} members`);
  const cluster = await startCluster(kind, pods, {
    redisUrl,
    prefix: `bso${kind[0]}${tag}`,
    env: redisOverride?.env,
    nodeArgs: p.perf ? ['--perf-basic-prof'] : [],
  });
  let load: RoomLoad | undefined;
  try {
    const layout = twoPodLayout(
      p.rooms,
      p.members,
      Array.from({ length: pods }, (_, i) => i),
      'so-',
    );
    try {
      load = await RoomLoad.setup(cluster, layout, { userPrefix: `so${tag}-`, log: ctx.log, signal });
    } catch (e) {
      assertAlive(cluster, 'the set-up');
      throw e;
    }
    await load.warmUp(p.rate, p.payloadBytes, signal);
    const pids = cluster.servers.map((s) => s.pid);
    for (const k of Object.keys(load.others)) delete load.others[k];

    ctx.log(`scaleout/${kind} ${pods} pod(s): idle window ${p.seconds} s`);
    const si = cpuWindow(pids);
    const ri = cpuWindow(redisPids);
    await sleep(p.seconds * 1000);
    const idle = { servers: si.stop(), redis: ri.stop() };
    assertAlive(cluster, 'the idle window');
    if (signal.aborted) throw new Error('aborted (benchmark time bound reached)');

    ctx.log(`scaleout/${kind} ${pods} pod(s): ${p.rate} msg/s for ${p.seconds} s`);
    const cmd0 = redisOverride ? undefined : await commandCounts(redisUrl);
    const received = async () =>
      kind === 'gateway'
        ? (
            await Promise.all(
              cluster.servers.map(async (s) => sum(await metricsText(s.metricsPort!), 'realtime_adapter_entries_received_total')),
            )
          ).reduce((a, b) => a + b, 0)
        : NaN;
    const received0 = await received();
    await redisOverride?.aroundLoad?.before();
    const sl = cpuWindow(pids);
    const rl = cpuWindow(redisPids);
    const traffic = await load.run(p.rate, p.seconds, { payloadBytes: p.payloadBytes, signal });
    const loadCpu = { servers: sl.stop(), redis: rl.stop() };
    await redisOverride?.aroundLoad?.after();
    const received1 = await received();
    assertAlive(cluster, 'the load window');
    const cmds = cmd0 ? diffCounts(cmd0, await commandCounts(redisUrl)) : {};
    const n = Math.max(1, traffic.acked);
    const us = (ms: number) => (ms * 1000) / n;
    const run: ScaleRun = {
      kind,
      pods,
      idle,
      load: loadCpu,
      traffic,
      perMessageUs: {
        servers: us(loadCpu.servers.total),
        redis: us(loadCpu.redis.total),
        total: us(loadCpu.servers.total + loadCpu.redis.total),
        serversAboveIdle: us(aboveIdle(loadCpu.servers, idle.servers)),
        redisAboveIdle: us(aboveIdle(loadCpu.redis, idle.redis)),
        totalAboveIdle: us(aboveIdle(loadCpu.servers, idle.servers) + aboveIdle(loadCpu.redis, idle.redis)),
      },
      redisCommandsPerMessage: perUnit(cmds, n),
      redisCommandsPerMessageTotal: total(cmds) / n,
      otherPackets: { ...load.others },
      entriesReceivedPerMessage: (received1 - received0) / n,
    };
    ctx.log(
      `scaleout/${kind} ${pods} pod(s): ${traffic.acked}/${traffic.sent} acked at ${traffic.achievedRate.toFixed(0)} msg/s, lost ${traffic.lost}, dup ${traffic.duplicates}, ` +
        `p50 ${traffic.latencyMs.p50.toFixed(1)} ms; CPU/msg servers ${run.perMessageUs.servers.toFixed(0)} us + Redis ${run.perMessageUs.redis.toFixed(0)} us ` +
        `(above idle ${run.perMessageUs.serversAboveIdle.toFixed(0)} + ${run.perMessageUs.redisAboveIdle.toFixed(0)})`,
    );

    if (p.perf) {
      // A second load window, profiled; the figures above come from the unprofiled one.
      const file = path.join(ctx.outDir, 'profiles', `perf-scaleout-${kind}-${pods}.data`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const rec = perfRecord([...pids, ...redisPids], file);
      await sleep(500);
      const w = cpuWindow([...pids, ...redisPids]);
      const t = await load.run(p.rate, p.seconds, { payloadBytes: p.payloadBytes, signal });
      const cpu = w.stop();
      await rec.stop();
      try {
        const per1k = cpu.total / (Math.max(1, t.acked) / 1000);
        run.profile =
          formatPerf(
            `perf CPU profile, ${kind}, ${pods} pod(s) + Redis, a second (profiled) load window (${path.relative(process.cwd(), file)})`,
            perfSummary(file, 40),
            per1k,
            'messages',
          ) +
          '\n' +
          formatInclusive(`  ${kind}, ${pods} pod(s)`, perfInclusive(file, INCLUSIVE, 45), per1k, 'messages');
      } catch (e) {
        run.profile = `perf report failed for ${kind}: ${(e as Error).message}`;
      }
    }
    return run;
  } finally {
    load?.close();
    await cluster.stop();
    if (p.perf && process.env.BENCH_KEEP_PERF_MAPS !== '1') removePerfMaps(cluster.servers.map((s) => s.pid));
  }
}

export const scaleout: Benchmark = {
  name: 'scaleout',
  description: 'cluster CPU per room message with 1, 2 and 4 server processes (1,000 rooms of 4, each on at most 2 pods), gateway vs bare',
  timeoutMs: 1_500_000,
  async run(ctx, signal): Promise<BenchResult> {
    const p = params();
    const runs: Record<Kind, Map<number, ScaleRun>> = { gateway: new Map(), bare: new Map() };
    const profiles: string[] = [];
    for (const [i, n] of p.pods.entries()) {
      const order = i % 2 === 0 ? p.order : [...p.order].reverse();
      for (const kind of order) {
        const rate = p.weak ? p.rate * n : p.rate;
        const r = await runScale(kind, n, { ...p, rate, perf: p.perf && p.perfPods.includes(n) }, ctx, signal);
        runs[kind].set(n, r);
        if (r.profile) profiles.push(r.profile);
      }
    }
    const last = p.pods[p.pods.length - 1];
    // What a wake-up costs on this machine, at the offered rate and at the rate per pod of the largest N.
    const lowRate = Math.max(1, Math.round(p.rate / last));
    ctx.log(`scaleout: wake-up cost of this machine (a trivial Node echo at ${p.rate} and ${lowRate} msg/s)`);
    const machine: WakeupPoint[] = await wakeupCost(lowRate === p.rate ? [p.rate] : [p.rate, lowRate], 10);
    const g = (n: number) => runs.gateway.get(n)!;
    const b = (n: number) => runs.bare.get(n)!;
    const rows: Row[] = [];
    for (const n of p.pods) {
      const pre = `${n} pod${n > 1 ? 's' : ''}:`;
      rows.push(
        { metric: `${pre} servers CPU us / message`, gateway: g(n).perMessageUs.servers, bare: b(n).perMessageUs.servers, digits: 0 },
        { metric: `${pre} Redis CPU us / message`, gateway: g(n).perMessageUs.redis, bare: b(n).perMessageUs.redis, digits: 0 },
        { metric: `${pre} servers + Redis CPU us / message`, gateway: g(n).perMessageUs.total, bare: b(n).perMessageUs.total, digits: 0 },
        {
          metric: `${pre}   above idle: servers + Redis us / message`,
          gateway: g(n).perMessageUs.totalAboveIdle,
          bare: b(n).perMessageUs.totalAboveIdle,
          digits: 0,
        },
        {
          metric: `${pre}   room broadcasts received by the pods per message`,
          gateway: g(n).entriesReceivedPerMessage,
          bare: NaN,
          digits: 2,
          noRatio: true,
        },
        {
          metric: `${pre}   server wake-ups / message (main threads' voluntary switches)`,
          gateway: g(n).load.servers.wakeups / Math.max(1, g(n).traffic.acked),
          bare: b(n).load.servers.wakeups / Math.max(1, b(n).traffic.acked),
          digits: 2,
        },
        {
          metric: `${pre}   server preemptions / message`,
          gateway: g(n).load.servers.preempted / Math.max(1, g(n).traffic.acked),
          bare: b(n).load.servers.preempted / Math.max(1, b(n).traffic.acked),
          digits: 2,
        },
        {
          metric: `${pre}   idle: servers + Redis CPU ms / s`,
          gateway: (g(n).idle.servers.total + g(n).idle.redis.total) / g(n).idle.servers.seconds,
          bare: (b(n).idle.servers.total + b(n).idle.redis.total) / b(n).idle.servers.seconds,
          digits: 1,
        },
      );
    }
    for (const n of p.pods.slice(1)) {
      const pre = `${n} pods / 1 pod:`;
      const rel = (k: Kind, f: (r: ScaleRun) => number) => f(runs[k].get(n)!) / f(runs[k].get(1)!);
      rows.push(
        {
          metric: `${pre} servers + Redis cost`,
          gateway: rel('gateway', (r) => r.perMessageUs.total),
          bare: rel('bare', (r) => r.perMessageUs.total),
          digits: 2,
          gatewayTarget: n === last && n === 4 && !p.weak ? { max: 1.5 } : undefined,
        },
        {
          metric: `${pre} servers-only cost`,
          gateway: rel('gateway', (r) => r.perMessageUs.servers),
          bare: rel('bare', (r) => r.perMessageUs.servers),
          digits: 2,
        },
        {
          metric: `${pre} above-idle cost (servers + Redis)`,
          gateway: rel('gateway', (r) => r.perMessageUs.totalAboveIdle),
          bare: rel('bare', (r) => r.perMessageUs.totalAboveIdle),
          digits: 2,
          gatewayTarget: n === last && n === 4 && !p.weak ? { max: 1.5 } : undefined,
        },
      );
    }
    for (const m of machine)
      rows.push({
        metric: `machine: a trivial Node TCP echo at ${m.rate} msg/s: CPU us / message (wake-ups / message ${m.wakeupsPerMessage.toFixed(2)})`,
        gateway: m.cpuUsPerMessage,
        bare: NaN,
        digits: 1,
        noRatio: true,
      });
    if (machine.length === 2)
      rows.push({
        metric: `machine: the echo's CPU per message at ${machine[1].rate} msg/s over ${machine[0].rate} msg/s`,
        gateway: machine[1].cpuUsPerMessage / machine[0].cpuUsPerMessage,
        bare: NaN,
        digits: 2,
        noRatio: true,
      });
    for (const n of p.pods)
      rows.push(
        { metric: `${n} pod(s): msg/s acked`, gateway: g(n).traffic.achievedRate, bare: b(n).traffic.achievedRate, digits: 0 },
        { metric: `${n} pod(s): latency p50 (ms)`, gateway: g(n).traffic.latencyMs.p50, bare: b(n).traffic.latencyMs.p50, digits: 1 },
        { metric: `${n} pod(s): latency p99 (ms)`, gateway: g(n).traffic.latencyMs.p99, bare: b(n).traffic.latencyMs.p99, digits: 1 },
      );
    const sumOf = (k: Kind, f: (r: ScaleRun) => number) => [...runs[k].values()].reduce((a, r) => a + f(r), 0);
    rows.push(
      {
        metric: 'all runs: expected deliveries',
        gateway: sumOf('gateway', (r) => r.traffic.expected),
        bare: sumOf('bare', (r) => r.traffic.expected),
        noRatio: true,
      },
      {
        metric: 'all runs: lost deliveries',
        gateway: sumOf('gateway', (r) => r.traffic.lost),
        bare: sumOf('bare', (r) => r.traffic.lost),
        noRatio: true,
      },
      {
        metric: 'all runs: duplicates',
        gateway: sumOf('gateway', (r) => r.traffic.duplicates),
        bare: sumOf('bare', (r) => r.traffic.duplicates),
        noRatio: true,
      },
      {
        metric: 'all runs: ack errors',
        gateway: sumOf('gateway', (r) => r.traffic.ackErrors),
        bare: sumOf('bare', (r) => r.traffic.ackErrors),
        noRatio: true,
      },
      {
        metric: 'all runs: client connections closed by a server',
        gateway: sumOf('gateway', (r) => r.traffic.closedClients),
        bare: sumOf('bare', (r) => r.traffic.closedClients),
        noRatio: true,
      },
      {
        metric: 'all runs: sends > 50 ms late',
        gateway: sumOf('gateway', (r) => r.traffic.lateSends),
        bare: sumOf('bare', (r) => r.traffic.lateSends),
        noRatio: true,
      },
    );
    const cmds = (r: ScaleRun) =>
      Object.entries(r.redisCommandsPerMessage)
        .slice(0, 6)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    const perServer = (r: ScaleRun) => r.load.servers.ms.map((x) => ((x * 1000) / Math.max(1, r.traffic.acked)).toFixed(0)).join(' / ');
    const notes = [
      `${p.rooms} rooms x ${p.members} members (${p.rooms * p.members} clients, one user each), room r on pods r and r+1 mod N (half the members each); ` +
        `${p.weak ? `${p.rate} msg/s per pod (x N: the same load per pod)` : `${p.rate} msg/s`} offered for ${p.seconds} s, each from a member of its room, delivered to all ${p.members}; ${p.payloadBytes} B padding; ` +
        `idle window of ${p.seconds} s first (same clients connected); fresh processes per run, order ${p.order.join(' then ')} alternating per pod count`,
      'CPU = user + system from /proc over the load window (first send to last delivery), per message acked; "above idle" subtracts the idle window\'s rate over the same duration',
      "room broadcasts received per message: the gateway's realtime_adapter_entries_received_total summed over its pods (a room's members are on at most 2 pods); bare Socket.IO has no such counter, and every one of its pods XREADs every entry of the one stream (N per message)",
      ...p.pods.map((n) => `${n} pod(s), CPU us/msg per server: gateway ${perServer(g(n))}; bare ${perServer(b(n))}`),
      ...p.pods.map(
        (n) =>
          `${n} pod(s), Redis commands per message: gateway ${g(n).redisCommandsPerMessageTotal.toFixed(2)} (${cmds(g(n))}); bare ${b(n).redisCommandsPerMessageTotal.toFixed(2)} (${cmds(b(n))})`,
      ),
    ];
    for (const k of KINDS)
      for (const r of runs[k].values()) {
        if (r.traffic.ackErrors)
          notes.push(`${k} ${r.pods} pod(s): ${r.traffic.ackErrors} ack errors, e.g. ${JSON.stringify(r.traffic.ackErrorSamples[0])}`);
        if (r.traffic.lateSends > r.traffic.sent * 0.01)
          notes.push(
            `${k} ${r.pods} pod(s): ${r.traffic.lateSends} of ${r.traffic.sent} sends went out > 50 ms late: the offered rate was not held`,
          );
      }
    if (process.env.BENCH_PERF === '1' && !p.perf) notes.push('BENCH_PERF=1 ignored: `perf` is not installed');
    const data = {
      params: p,
      runs: Object.fromEntries(KINDS.map((k) => [k, [...runs[k].values()].map(({ profile: _p, ...r }) => r)])),
      machine,
    };
    const file = writeBenchJson(ctx, 'scaleout', data);
    notes.push(`numbers also in ${path.relative(process.cwd(), file)}`);
    return {
      title: `Scale-out: cluster CPU per room message at ${p.weak ? `${p.rate} msg/s per pod` : `${p.rate} msg/s`}, ${p.pods.join(' / ')} server processes`,
      params: { ...p },
      rows,
      notes,
      extra: profiles.length ? profiles.join('\n\n') : undefined,
      data,
    };
  },
};
