/**
 * Memory per idle connection: N websocket clients connected to ONE server process (gateway, then
 * bare Socket.IO; both on Redis with the same options). The server runs with --inspect so that
 * this benchmark can force full GCs (HeapProfiler.collectGarbage) before each sample; RSS comes
 * from /proc/<pid>/status (VmRSS), the V8 heap from Runtime.getHeapUsage.
 *
 * baseline = after a warm-up of BENCH_IDLE_WARMUP connections (code paths compiled, pools
 * allocated), GC, and idle CPU; after = once N more connections are up and the server is idle
 * again; per connection = (after − baseline) / N.
 */
import net from 'net';
import { aggregateHeap, diffHeap, formatHeapDiff, HeapCounts } from './lib/heap-summary';
import { formatSummary, summarise, type ProfileSummary } from './lib/profile-summary';
import { cpuMs, openFilesLimit, rssKiB, sleep } from './lib/proc';
import { commandCounts, diffCounts, perUnit } from './lib/redis-stats';
import { envInt, median, Row } from './lib/report';
import { connectMany, SioClient } from './lib/sio-client';
import { Kind, kindOrder, ServerHandle, startCluster } from './lib/targets';
import type { Benchmark, BenchContext, BenchResult } from './lib/types';

interface Params {
  connections: number;
  requested: number;
  warmup: number;
  concurrency: number;
  sourceAddresses: string[];
  order: Kind[];
  heapDiff: boolean;
  profile: boolean;
}

interface Sample {
  rssKiB: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  rssSamples: number[];
}

export interface MemoryNumbers {
  connections: number;
  before: Sample;
  after: Sample;
  rssKiBPerConnection: number;
  heapKiBPerConnection: number;
  connectSeconds: number;
  /** Event-loop delay of the server while the N connections were made (monitorEventLoopDelay, 10 ms resolution). */
  lag: { maxMs: number; p99Ms: number; meanMs: number };
  connectsPerSec: number;
  /** Server CPU (user + system) per connection while the N clients connected, in µs. */
  cpuUsPerConnection: number;
  /** BENCH_PROFILE=1: the server's V8 CPU profile of the connect phase. */
  profile?: ProfileSummary;
  /** Redis commands the server issued per connection while the N clients connected. */
  redisCommandsPerConnection: Record<string, number>;
  heapDiff?: ReturnType<typeof diffHeap>;
}

/** Loopback source addresses that can actually be bound here (127.0.0.x beyond .1 work on Linux). */
async function usableSources(count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 1; i <= count; i++) {
    const addr = `127.0.0.${i}`;
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(0, addr, () => srv.close(() => resolve(true)));
    });
    if (ok) out.push(addr);
  }
  return out.length ? out : ['127.0.0.1'];
}

async function params(ctx: BenchContext, notes: string[]): Promise<Params> {
  const requested = envInt('BENCH_IDLE_CONNECTIONS', 5000, 1, 200000);
  const warmup = envInt('BENCH_IDLE_WARMUP', 100, 1, 10000);
  let connections = requested;
  const limit = openFilesLimit();
  // This process holds every client socket; the server holds as many plus its own files.
  const need = requested + warmup + 500;
  if (limit < need) {
    connections = Math.max(1, limit - warmup - 500);
    const msg =
      `ulimit -n is ${limit}, too low for ${requested} connections (needs about ${need} file descriptors in this process and in the server). ` +
      `Measuring ${connections} connections instead; raise the limit with \`ulimit -n ${Math.max(65536, need)}\` in the shell that runs the benchmark.`;
    ctx.log(`memory: WARNING: ${msg}`);
    notes.push(`WARNING: ${msg}`);
  }
  // Each source address gives ~28k ephemeral ports (net.ipv4.ip_local_port_range); stay well below.
  const perAddress = 20000;
  const wanted = Math.ceil((connections + warmup) / perAddress);
  const sourceAddresses = wanted > 1 ? await usableSources(Math.min(wanted, 250)) : ['127.0.0.1'];
  if (sourceAddresses.length < wanted)
    notes.push(`only ${sourceAddresses.length} loopback source addresses usable; ephemeral ports may run out`);
  const order = kindOrder();
  return {
    connections,
    requested,
    warmup,
    concurrency: envInt('BENCH_CONNECT_CONCURRENCY', 100, 1, 5000),
    sourceAddresses,
    order,
    heapDiff: process.env.BENCH_HEAP_DIFF === '1',
    profile: process.env.BENCH_PROFILE === '1',
  };
}

/** Waits until the process uses less than 3% of a core over 500 ms (bounded). */
async function waitIdle(pid: number, maxMs: number): Promise<void> {
  const end = Date.now() + maxMs;
  while (Date.now() < end) {
    const a = cpuMs(pid);
    await sleep(500);
    if (cpuMs(pid) - a < 15) return;
  }
}

async function sample(s: ServerHandle): Promise<Sample> {
  const rss: number[] = [];
  let heap = { usedSize: NaN, totalSize: NaN };
  for (let i = 0; i < 3; i++) {
    await s.inspector!.gc();
    await sleep(300);
    rss.push(rssKiB(s.pid));
    heap = await s.inspector!.heapUsage();
  }
  return { rssKiB: median(rss), heapUsedBytes: heap.usedSize, heapTotalBytes: heap.totalSize, rssSamples: rss };
}

async function runOne(kind: Kind, p: Params, ctx: BenchContext, signal: AbortSignal): Promise<MemoryNumbers> {
  const redis = await ctx.redis();
  const tag = Math.random().toString(36).slice(2, 8);
  ctx.log(`memory/${kind}: starting 1 server process (with --inspect for GC control)`);
  const cluster = await startCluster(kind, 1, { redisUrl: redis.url, prefix: `bmem${kind[0]}${tag}`, inspect: true });
  const server = cluster.servers[0];
  const clients: SioClient[] = [];
  const connect = (prefix: string, offset: number) => async (i: number) => {
    if (signal.aborted) throw new Error('aborted (benchmark time bound reached)');
    const n = offset + i;
    const localAddress = p.sourceAddresses.length > 1 ? p.sourceAddresses[n % p.sourceAddresses.length] : undefined;
    return SioClient.connect(server.url, { auth: await cluster.auth(`${prefix}-${n}`), localAddress, timeoutMs: 30000 });
  };
  try {
    clients.push(...(await connectMany(p.warmup, p.concurrency, connect('warm', 0))));
    await waitIdle(server.pid, 5000);
    const before = await sample(server);
    let heapBefore: HeapCounts | undefined;
    if (p.heapDiff) heapBefore = aggregateHeap(await server.inspector!.heapSnapshot());
    const cmd0 = await commandCounts(redis.url);
    ctx.log(
      `memory/${kind}: baseline RSS ${(before.rssKiB / 1024).toFixed(1)} MiB with ${p.warmup} warm-up connections; connecting ${p.connections} more`,
    );
    await server.inspector!.startLagMonitor();
    if (p.profile) await server.inspector!.startProfile();
    const cpu0 = cpuMs(server.pid);
    const t0 = Date.now();
    clients.push(...(await connectMany(p.connections, p.concurrency, connect('idle', p.warmup))));
    const connectSeconds = (Date.now() - t0) / 1000;
    // What the connects left to do (session writes, presence announcements) is theirs too.
    await waitIdle(server.pid, 15000);
    const cpuUsPerConnection = ((cpuMs(server.pid) - cpu0) * 1000) / p.connections;
    const profile = p.profile ? summarise(await server.inspector!.stopProfile(), 30) : undefined;
    const lag = await server.inspector!.stopLagMonitor();
    await waitIdle(server.pid, 15000);
    const after = await sample(server);
    const redisCommands = diffCounts(cmd0, await commandCounts(redis.url));
    const heapDiff = heapBefore ? diffHeap(heapBefore, aggregateHeap(await server.inspector!.heapSnapshot()), p.connections) : undefined;
    const open = clients.filter((c) => c.connected).length;
    if (open !== p.connections + p.warmup)
      throw new Error(`memory/${kind}: only ${open} of ${p.connections + p.warmup} clients still connected at the sample`);
    const r: MemoryNumbers = {
      connections: p.connections,
      before,
      after,
      rssKiBPerConnection: (after.rssKiB - before.rssKiB) / p.connections,
      heapKiBPerConnection: (after.heapUsedBytes - before.heapUsedBytes) / 1024 / p.connections,
      connectSeconds,
      lag,
      connectsPerSec: p.connections / connectSeconds,
      cpuUsPerConnection,
      profile,
      redisCommandsPerConnection: perUnit(redisCommands, p.connections),
      heapDiff,
    };
    ctx.log(
      `memory/${kind}: RSS ${(after.rssKiB / 1024).toFixed(1)} MiB → ${r.rssKiBPerConnection.toFixed(2)} KiB/connection, heap ${r.heapKiBPerConnection.toFixed(2)} KiB/connection`,
    );
    return r;
  } finally {
    for (const c of clients) c.terminate();
    await cluster.stop();
  }
}

export const memory: Benchmark = {
  name: 'memory',
  description: 'server memory per idle websocket connection, one process (gateway vs bare Socket.IO)',
  timeoutMs: 900000,
  async run(ctx, signal): Promise<BenchResult> {
    const notes: string[] = [];
    const p = await params(ctx, notes);
    const r = {} as Record<Kind, MemoryNumbers>;
    for (const kind of p.order) {
      r[kind] = await runOne(kind, p, ctx, signal);
      await sleep(500); // let the closed sockets leave TIME_WAIT bookkeeping of the other run alone
    }
    const g = r.gateway;
    const b = r.bare;
    const MiB = (k: number) => k / 1024;
    const rows: Row[] = [
      { metric: 'RSS per connection (KiB)', gateway: g.rssKiBPerConnection, bare: b.rssKiBPerConnection, digits: 2, target: { max: 1.2 } },
      { metric: 'V8 heap used per connection (KiB)', gateway: g.heapKiBPerConnection, bare: b.heapKiBPerConnection, digits: 2 },
      { metric: 'RSS baseline (MiB)', gateway: MiB(g.before.rssKiB), bare: MiB(b.before.rssKiB), digits: 1 },
      {
        metric: `RSS with ${p.connections + p.warmup} connections (MiB)`,
        gateway: MiB(g.after.rssKiB),
        bare: MiB(b.after.rssKiB),
        digits: 1,
      },
      {
        metric: 'V8 heap used baseline (MiB)',
        gateway: g.before.heapUsedBytes / 2 ** 20,
        bare: b.before.heapUsedBytes / 2 ** 20,
        digits: 1,
      },
      {
        metric: `V8 heap used with ${p.connections + p.warmup} conns (MiB)`,
        gateway: g.after.heapUsedBytes / 2 ** 20,
        bare: b.after.heapUsedBytes / 2 ** 20,
        digits: 1,
      },
      { metric: 'connects/s (handshakes)', gateway: g.connectsPerSec, bare: b.connectsPerSec },
      { metric: 'server CPU per connect (µs)', gateway: g.cpuUsPerConnection, bare: b.cpuUsPerConnection },
      { metric: 'event-loop delay while connecting, max (ms)', gateway: g.lag.maxMs, bare: b.lag.maxMs, digits: 1 },
      { metric: 'event-loop delay while connecting, p99 (ms)', gateway: g.lag.p99Ms, bare: b.lag.p99Ms, digits: 1 },
    ];
    notes.unshift(
      `${p.connections} idle websocket connections (+${p.warmup} warm-up, in the baseline) to one process each; distinct users; gateway clients send a signed HS256 JWT, bare clients nothing`,
      'samples taken after the server is idle and after forced full GCs (inspector HeapProfiler.collectGarbage); RSS = median of 3 VmRSS samples',
    );
    const cmds = (x: MemoryNumbers) =>
      Object.entries(x.redisCommandsPerConnection)
        .slice(0, 8)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none';
    notes.push(`Redis commands per connection: gateway ${cmds(g)}; bare ${cmds(b)}`);
    if (process.env.BENCH_GATEWAY_DIAG)
      notes.push(`DIAGNOSTIC RUN: gateway ran with ${process.env.BENCH_GATEWAY_DIAG} (BENCH_GATEWAY_DIAG); not the product`);
    if (process.env.BENCH_BARE_FEATURES)
      notes.push(`DIAGNOSTIC RUN: bare ran with gateway features ${process.env.BENCH_BARE_FEATURES} (BENCH_BARE_FEATURES)`);
    if (p.heapDiff)
      notes.push('BENCH_HEAP_DIFF=1: heap snapshots were taken (the "after" RSS includes what the first snapshot left behind)');
    // One section per kind that has it, in the table's order.
    const sections = (on: boolean, text: (k: Kind) => string | undefined) =>
      on
        ? (['gateway', 'bare'] as Kind[])
            .map((k) => text(k) ?? '')
            .filter(Boolean)
            .join('\n\n')
        : '';
    const profiles = sections(p.profile, (k) => r[k].profile && formatSummary(`Connect phase CPU profile, ${k}`, r[k].profile!));
    const heaps = sections(p.heapDiff, (k) => r[k].heapDiff && formatHeapDiff(`Heap growth per connection, ${k}`, r[k].heapDiff!));
    const extra = [profiles, heaps].filter(Boolean).join('\n\n') || undefined;
    return {
      title: 'Memory per idle connection (one process)',
      params: { ...p },
      rows,
      notes,
      extra,
      data: { gateway: g, bare: b },
    };
  },
};
