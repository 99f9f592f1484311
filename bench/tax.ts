/**
 * The tax on a pod that has no audience: 3 server processes, clients only on the first two (many
 * rooms of 4 members, half on each), room traffic flowing between them; the third holds no client.
 * Its CPU per message above its own idle CPU: after a settle (BENCH_TAX_SETTLE_SECONDS, 5),
 * BENCH_TAX_ROUNDS (2) rounds of an idle window (clients connected, no traffic) then a load window
 * of the same duration (BENCH_TAX_SECONDS, 20), and a closing idle window; the idle rate is pooled
 * over every idle window; /proc user + system. BENCH_TAX_ROOMS (500) rooms of BENCH_TAX_MEMBERS
 * (4), BENCH_TAX_RATE (400) msg/s. Target for the
 * gateway: at most 10 us per message (the sharded adapter: it subscribes no room channel, so it
 * should receive nothing). Also its realtime_adapter_entries_received_total (METRICS_PORT), which
 * should stay 0. Bare Socket.IO on the streams adapter: every pod XREADs the one stream and decodes
 * every entry, whoever it is for.
 *
 * `BENCH_ONLY=tax npm run bench`; numbers also in .bench/tax.json. BENCH_PERF=1 adds a profiled
 * second load window (perf CPU-time samples of the third process only).
 */
import fs from 'fs';
import path from 'path';
import { aboveIdle, cpuWindow, type CpuWindow } from './lib/cpu';
import { metricsText, sum } from './lib/metrics';
import { formatPerf, perfAvailable, perfRecord, perfSummary, removePerfMaps } from './lib/perf';
import { sleep } from './lib/proc';
import { commandCounts, diffCounts } from './lib/redis-stats';
import { envInt, median, Row, writeBenchJson } from './lib/report';
import { RoomLoad, twoPodLayout, type LoadNumbers } from './lib/room-load';
import { Kind, KINDS, kindOrder, startCluster } from './lib/targets';
import type { Benchmark, BenchContext, BenchResult } from './lib/types';

interface Params {
  rooms: number;
  members: number;
  rate: number;
  seconds: number;
  rounds: number;
  settleSeconds: number;
  payloadBytes: number;
  order: Kind[];
  perf: boolean;
}

function params(): Params {
  const order = kindOrder();
  return {
    rooms: envInt('BENCH_TAX_ROOMS', 500, 1, 20000),
    members: envInt('BENCH_TAX_MEMBERS', 4, 2, 8),
    rate: envInt('BENCH_TAX_RATE', 400, 1, 100000),
    seconds: envInt('BENCH_TAX_SECONDS', 20, 2, 600),
    rounds: envInt('BENCH_TAX_ROUNDS', 2, 1, 10),
    settleSeconds: envInt('BENCH_TAX_SETTLE_SECONDS', 5, 0, 600),
    payloadBytes: envInt('BENCH_PAYLOAD_BYTES', 128, 0, 16000),
    order,
    perf: process.env.BENCH_PERF === '1' && perfAvailable(),
  };
}

interface Window {
  idle: CpuWindow;
  load: CpuWindow;
  traffic: LoadNumbers;
  /** realtime_adapter_entries_received_total / _skipped_total of the third pod over idle + load (gateway only). */
  received?: number;
  skipped?: number;
  /** XADDs to Redis during the load window (bare: the one stream every pod XREADs). */
  xadds: number;
}

interface TaxRun {
  kind: Kind;
  windows: Window[];
  /** The idle window after the last load window. */
  finalIdle: CpuWindow;
  /** Third pod: CPU us per message above idle, total over rounds. */
  thirdAboveIdleUs: number;
  thirdTotalUs: number;
  thirdIdleMsPerSec: number;
  /** The two pods with clients: CPU us per message (total). */
  othersUs: number;
  received?: number;
  skipped?: number;
  xadds: number;
  acked: number;
  profile?: string;
}

async function runKind(kind: Kind, p: Params, ctx: BenchContext, signal: AbortSignal): Promise<TaxRun> {
  const redis = await ctx.redis();
  const tag = Math.random().toString(36).slice(2, 8);
  ctx.log(`tax/${kind}: 3 server processes, ${p.rooms} rooms x ${p.members} on the first two`);
  const cluster = await startCluster(kind, 3, {
    redisUrl: redis.url,
    prefix: `btx${kind[0]}${tag}`,
    nodeArgs: p.perf ? ['--perf-basic-prof'] : [],
  });
  let load: RoomLoad | undefined;
  try {
    load = await RoomLoad.setup(cluster, twoPodLayout(p.rooms, p.members, [0, 1], 'tx-'), {
      userPrefix: `tx${tag}-`,
      log: ctx.log,
      signal,
    });
    await load.warmUp(p.rate, p.payloadBytes, signal);
    const third = cluster.servers[2];
    const counter = async (name: string) => (third.metricsPort ? sum(await metricsText(third.metricsPort), name) : NaN);
    // Settle after the warm-up (its garbage, the first periodic tasks) before the first idle window.
    await sleep(p.settleSeconds * 1000);
    const windows: Window[] = [];
    for (let round = 0; round < p.rounds; round++) {
      const rec0 = await counter('realtime_adapter_entries_received_total');
      const skip0 = await counter('realtime_adapter_entries_skipped_total');
      ctx.log(`tax/${kind} round ${round + 1}/${p.rounds}: idle window ${p.seconds} s`);
      const wi = cpuWindow(cluster.servers.map((s) => s.pid));
      await sleep(p.seconds * 1000);
      const idle = wi.stop();
      if (signal.aborted) throw new Error('aborted (benchmark time bound reached)');
      ctx.log(`tax/${kind} round ${round + 1}/${p.rounds}: ${p.rate} msg/s for ${p.seconds} s`);
      const cmd0 = await commandCounts(redis.url);
      const wl = cpuWindow(cluster.servers.map((s) => s.pid));
      const traffic = await load.run(p.rate, p.seconds, { payloadBytes: p.payloadBytes, signal });
      const loadCpu = wl.stop();
      const cmds = diffCounts(cmd0, await commandCounts(redis.url));
      const w: Window = {
        idle,
        load: loadCpu,
        traffic,
        received: kind === 'gateway' ? (await counter('realtime_adapter_entries_received_total')) - rec0 : undefined,
        skipped: kind === 'gateway' ? (await counter('realtime_adapter_entries_skipped_total')) - skip0 : undefined,
        xadds: cmds.xadd ?? 0,
      };
      windows.push(w);
      const third = (x: CpuWindow) => ({ total: x.ms[2], ms: [x.ms[2]], seconds: x.seconds, wakeups: NaN, preempted: NaN });
      ctx.log(
        `tax/${kind} round ${round + 1}: ${traffic.acked} msgs acked, lost ${traffic.lost}; third pod idle ${idle.ms[2]} ms, load ${loadCpu.ms[2]} ms ` +
          `= ${((aboveIdle(third(loadCpu), third(idle)) * 1000) / Math.max(1, traffic.acked)).toFixed(1)} us/msg above idle; received ${w.received ?? 'n/a'}`,
      );
    }
    // One more idle window after the last load window: the idle rate brackets every load window.
    ctx.log(`tax/${kind}: closing idle window ${p.seconds} s`);
    const wf = cpuWindow(cluster.servers.map((s) => s.pid));
    await sleep(p.seconds * 1000);
    const finalIdle = wf.stop();
    const acked = windows.reduce((a, w) => a + w.traffic.acked, 0);
    const idleMs = windows.reduce((a, w) => a + w.idle.ms[2], finalIdle.ms[2]);
    const idleSec = windows.reduce((a, w) => a + w.idle.seconds, finalIdle.seconds);
    const loadMs = windows.reduce((a, w) => a + w.load.ms[2], 0);
    const loadSec = windows.reduce((a, w) => a + w.load.seconds, 0);
    const othersMs = windows.reduce((a, w) => a + w.load.ms[0] + w.load.ms[1], 0);
    const run: TaxRun = {
      kind,
      windows,
      finalIdle,
      thirdAboveIdleUs: ((loadMs - (idleMs / idleSec) * loadSec) * 1000) / Math.max(1, acked),
      thirdTotalUs: (loadMs * 1000) / Math.max(1, acked),
      thirdIdleMsPerSec: idleMs / idleSec,
      othersUs: (othersMs * 1000) / Math.max(1, acked),
      received: kind === 'gateway' ? windows.reduce((a, w) => a + (w.received ?? 0), 0) : undefined,
      skipped: kind === 'gateway' ? windows.reduce((a, w) => a + (w.skipped ?? 0), 0) : undefined,
      xadds: windows.reduce((a, w) => a + w.xadds, 0),
      acked,
    };
    if (p.perf) {
      const file = path.join(ctx.outDir, 'profiles', `perf-tax-${kind}.data`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const rec = perfRecord([third.pid], file);
      await sleep(500);
      const w = cpuWindow([third.pid]);
      const t = await load.run(p.rate, p.seconds, { payloadBytes: p.payloadBytes, signal });
      const cpu = w.stop();
      await rec.stop();
      try {
        run.profile = formatPerf(
          `perf CPU profile, ${kind}, the pod without clients, a second (profiled) load window (${path.relative(process.cwd(), file)})`,
          perfSummary(file, 30),
          cpu.total / (Math.max(1, t.acked) / 1000),
          'messages',
        );
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

export const tax: Benchmark = {
  name: 'tax',
  description: 'CPU per room message of a pod holding no client while two others carry the traffic (gateway vs bare)',
  timeoutMs: 600_000,
  async run(ctx, signal): Promise<BenchResult> {
    const p = params();
    const runs = {} as Record<Kind, TaxRun>;
    for (const kind of p.order) runs[kind] = await runKind(kind, p, ctx, signal);
    const g = runs.gateway;
    const b = runs.bare;
    const sumT = (r: TaxRun, f: (w: Window) => number) => r.windows.reduce((a, w) => a + f(w), 0);
    const rows: Row[] = [
      {
        metric: 'pod without clients: CPU us / message above its idle',
        gateway: g.thirdAboveIdleUs,
        bare: b.thirdAboveIdleUs,
        digits: 1,
        gatewayTarget: { max: 10 },
      },
      { metric: 'pod without clients: CPU us / message (incl. idle)', gateway: g.thirdTotalUs, bare: b.thirdTotalUs, digits: 1 },
      { metric: 'pod without clients: idle CPU ms / s', gateway: g.thirdIdleMsPerSec, bare: b.thirdIdleMsPerSec, digits: 1 },
      {
        metric:
          'pod without clients: room entries received (gateway: realtime_adapter_entries_received_total; bare: entries of the stream it XREADs)',
        gateway: g.received ?? NaN,
        bare: b.xadds,
        noRatio: true,
      },
      { metric: 'the two pods with clients: CPU us / message', gateway: g.othersUs, bare: b.othersUs, digits: 0 },
      { metric: 'messages acked (all rounds)', gateway: g.acked, bare: b.acked, noRatio: true },
      {
        metric: 'msg/s acked',
        gateway: median(g.windows.map((w) => w.traffic.achievedRate)),
        bare: median(b.windows.map((w) => w.traffic.achievedRate)),
        digits: 0,
      },
      { metric: 'lost deliveries', gateway: sumT(g, (w) => w.traffic.lost), bare: sumT(b, (w) => w.traffic.lost), noRatio: true },
      { metric: 'duplicates', gateway: sumT(g, (w) => w.traffic.duplicates), bare: sumT(b, (w) => w.traffic.duplicates), noRatio: true },
      { metric: 'ack errors', gateway: sumT(g, (w) => w.traffic.ackErrors), bare: sumT(b, (w) => w.traffic.ackErrors), noRatio: true },
      {
        metric: 'client connections closed by a server',
        gateway: g.windows[g.windows.length - 1].traffic.closedClients,
        bare: b.windows[b.windows.length - 1].traffic.closedClients,
        noRatio: true,
      },
    ];
    const perRound = (r: TaxRun) =>
      r.windows
        .map(
          (w) =>
            `idle ${w.idle.ms[2]} ms / ${w.idle.seconds.toFixed(1)} s, load ${w.load.ms[2]} ms / ${w.load.seconds.toFixed(1)} s, ${w.traffic.acked} msgs`,
        )
        .join('; ');
    const notes = [
      `3 processes; ${p.rooms} rooms x ${p.members} members (${p.rooms * p.members} clients) half on process 1, half on process 2; process 3 holds none; ` +
        `${p.rate} msg/s from the rooms' members; ${p.settleSeconds} s settle, ${p.rounds} round(s) of idle ${p.seconds} s then load ${p.seconds} s, a closing idle ${p.seconds} s; CPU of process 3 from /proc (10 ms ticks); ` +
        `"above idle" = load CPU − idle CPU rate x load duration, over messages acked`,
      `gateway, process 3 per round: ${perRound(g)}`,
      `bare, process 3 per round: ${perRound(b)}`,
      `process 3, closing idle window: gateway ${g.finalIdle.ms[2]} ms / ${g.finalIdle.seconds.toFixed(1)} s; bare ${b.finalIdle.ms[2]} ms / ${b.finalIdle.seconds.toFixed(1)} s`,
      `gateway, process 3: realtime_adapter_entries_skipped_total +${g.skipped ?? 'n/a'} over the rounds`,
    ];
    const data = { params: p, runs: Object.fromEntries(KINDS.map((k) => [k, { ...runs[k], profile: undefined }])) };
    const file = writeBenchJson(ctx, 'tax', data);
    notes.push(`numbers also in ${path.relative(process.cwd(), file)}`);
    const profiles = KINDS.map((k) => runs[k].profile).filter(Boolean);
    return {
      title: `Tax on a pod without clients (3 processes, ${p.rate} msg/s between the other two)`,
      params: { ...p },
      rows,
      notes,
      extra: profiles.length ? profiles.join('\n\n') : undefined,
      data,
    };
  },
};
