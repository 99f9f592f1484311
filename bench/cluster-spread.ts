/**
 * Cluster spread: on a 3-master Redis Cluster (bench/lib/redis-cluster.ts, started for this
 * benchmark), the scale-out load (bench/scaleout.ts: 1,000 rooms of 4 members, each on at most 2
 * pods, a fixed message rate; BENCH_SPREAD_PODS processes, REDIS_CLUSTER=true): what each master
 * takes of the room traffic during the load window. INFO commandstats per node: XADD calls (room
 * history writes: the gateway's room-publish script writes one per message, in the room's shard;
 * the streams adapter one per message, in its one stream), SPUBLISH (the gateway's live messages),
 * all commands; INFO stats network bytes in/out; /proc CPU per node. Target for the gateway: no
 * master above 50 % of the room-traffic writes.
 *
 * `BENCH_ONLY=cluster-spread npm run bench`; numbers also in .bench/cluster-spread.json.
 */
import path from 'path';
import { nodeCounters, startBenchRedisCluster, type NodeCounters } from './lib/redis-cluster';
import { envInt, Row, writeBenchJson } from './lib/report';
import { Kind, KINDS, kindOrder } from './lib/targets';
import { runScale, type ScaleRun } from './scaleout';
import type { Benchmark, BenchResult } from './lib/types';

interface Params {
  pods: number;
  rooms: number;
  members: number;
  rate: number;
  seconds: number;
  payloadBytes: number;
  order: Kind[];
}

function params(): Params {
  const order = kindOrder();
  return {
    pods: envInt('BENCH_SPREAD_PODS', 2, 1, 8),
    rooms: envInt('BENCH_SCALE_ROOMS', 1000, 1, 20000),
    members: envInt('BENCH_SCALE_MEMBERS', 4, 2, 8),
    rate: envInt('BENCH_SCALE_RATE', 400, 1, 100000),
    seconds: envInt('BENCH_SPREAD_SECONDS', 10, 2, 600),
    payloadBytes: envInt('BENCH_PAYLOAD_BYTES', 128, 0, 16000),
    order,
  };
}

interface NodeShare {
  port: number;
  xadd: number;
  spublish: number;
  commands: number;
  netIn: number;
  netOut: number;
  cpuMs: number;
}

interface SpreadRun {
  kind: Kind;
  scale: ScaleRun;
  nodes: NodeShare[];
}

const share = (nodes: NodeShare[], f: (n: NodeShare) => number) => {
  const t = nodes.reduce((a, n) => a + f(n), 0);
  return nodes.map((n) => (t ? f(n) / t : NaN));
};
const maxShare = (nodes: NodeShare[], f: (n: NodeShare) => number) => Math.max(...share(nodes, f));
const pct = (xs: number[]) => xs.map((x) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : 'n/a')).join(' / ');

export const clusterSpread: Benchmark = {
  name: 'cluster-spread',
  description: 'share of room-traffic writes per master of a 3-master Redis Cluster under the scale-out load (gateway vs bare)',
  timeoutMs: 600_000,
  async run(ctx, signal): Promise<BenchResult> {
    const p = params();
    ctx.log('cluster-spread: starting a 3-master Redis Cluster');
    const cluster = await startBenchRedisCluster(3);
    const runs = {} as Record<Kind, SpreadRun>;
    try {
      for (const kind of p.order) {
        let before: NodeCounters[] = [];
        let after: NodeCounters[] = [];
        const scale = await runScale(kind, p.pods, p, ctx, signal, {
          url: cluster.url,
          pids: cluster.procs.map((x) => x.pid),
          env: { REDIS_CLUSTER: 'true' },
          aroundLoad: {
            before: async () => void (before = await Promise.all(cluster.ports.map(nodeCounters))),
            after: async () => void (after = await Promise.all(cluster.ports.map(nodeCounters))),
          },
        });
        const d = (i: number, f: (c: NodeCounters) => number) => f(after[i]) - f(before[i]);
        const nodes = cluster.ports.map((port, i) => ({
          port,
          xadd: d(i, (c) => c.calls.xadd ?? 0),
          spublish: d(i, (c) => c.calls.spublish ?? 0),
          commands: d(i, (c) => Object.entries(c.calls).reduce((a, [k, v]) => (k === 'info' || k.startsWith('client') ? a : a + v), 0)),
          netIn: d(i, (c) => c.stats.total_net_input_bytes ?? 0),
          netOut: d(i, (c) => c.stats.total_net_output_bytes ?? 0),
          cpuMs: scale.load.redis.ms[i],
        }));
        runs[kind] = { kind, scale, nodes };
        ctx.log(`cluster-spread/${kind}: XADD share per master ${pct(share(nodes, (n) => n.xadd))}`);
      }
    } finally {
      await cluster.stop();
    }
    const g = runs.gateway;
    const b = runs.bare;
    const rows: Row[] = [
      {
        metric: 'largest master share of room-history writes (XADD), %',
        gateway: 100 * maxShare(g.nodes, (n) => n.xadd),
        bare: 100 * maxShare(b.nodes, (n) => n.xadd),
        digits: 1,
        gatewayTarget: { max: 50 },
      },
      {
        metric: 'largest master share of live messages (SPUBLISH), %',
        gateway: 100 * maxShare(g.nodes, (n) => n.spublish),
        bare: NaN,
        digits: 1,
      },
      {
        metric: 'largest master share of all commands, %',
        gateway: 100 * maxShare(g.nodes, (n) => n.commands),
        bare: 100 * maxShare(b.nodes, (n) => n.commands),
        digits: 1,
      },
      {
        metric: 'largest master share of network output, %',
        gateway: 100 * maxShare(g.nodes, (n) => n.netOut),
        bare: 100 * maxShare(b.nodes, (n) => n.netOut),
        digits: 1,
      },
      {
        metric: 'largest master share of Redis CPU, %',
        gateway: 100 * maxShare(g.nodes, (n) => n.cpuMs),
        bare: 100 * maxShare(b.nodes, (n) => n.cpuMs),
        digits: 1,
      },
      {
        metric: 'XADD per message (all masters)',
        gateway: sumOf(g.nodes, 'xadd') / g.scale.traffic.acked,
        bare: sumOf(b.nodes, 'xadd') / b.scale.traffic.acked,
        digits: 2,
      },
      {
        metric: 'Redis commands per message (all masters)',
        gateway: sumOf(g.nodes, 'commands') / g.scale.traffic.acked,
        bare: sumOf(b.nodes, 'commands') / b.scale.traffic.acked,
        digits: 2,
      },
      {
        metric: 'Redis CPU us per message (all masters)',
        gateway: g.scale.perMessageUs.redis,
        bare: b.scale.perMessageUs.redis,
        digits: 0,
      },
      { metric: 'servers CPU us per message', gateway: g.scale.perMessageUs.servers, bare: b.scale.perMessageUs.servers, digits: 0 },
      { metric: 'msg/s acked', gateway: g.scale.traffic.achievedRate, bare: b.scale.traffic.achievedRate, digits: 0 },
      { metric: 'lost deliveries', gateway: g.scale.traffic.lost, bare: b.scale.traffic.lost, noRatio: true },
      { metric: 'duplicates', gateway: g.scale.traffic.duplicates, bare: b.scale.traffic.duplicates, noRatio: true },
      { metric: 'ack errors', gateway: g.scale.traffic.ackErrors, bare: b.scale.traffic.ackErrors, noRatio: true },
    ];
    const notes = [
      `3-master Redis Cluster (no replicas, contiguous slot ranges from redis-cli --cluster create); ${p.pods} server processes with REDIS_CLUSTER=true; ` +
        `${p.rooms} rooms x ${p.members} members, ${p.rate} msg/s for ${p.seconds} s (the scale-out load)`,
      ...KINDS.map(
        (k) =>
          `${k}, per master (ports ${runs[k].nodes.map((n) => n.port).join(' / ')}): XADD ${pct(share(runs[k].nodes, (n) => n.xadd))}; ` +
          `SPUBLISH ${pct(share(runs[k].nodes, (n) => n.spublish))}; commands ${pct(share(runs[k].nodes, (n) => n.commands))}; ` +
          `net out ${pct(share(runs[k].nodes, (n) => n.netOut))}; CPU ${pct(share(runs[k].nodes, (n) => n.cpuMs))}`,
      ),
    ];
    const data = {
      params: p,
      runs: Object.fromEntries(KINDS.map((k) => [k, { nodes: runs[k].nodes, scale: { ...runs[k].scale, profile: undefined } }])),
    };
    const file = writeBenchJson(ctx, 'cluster-spread', data);
    notes.push(`numbers also in ${path.relative(process.cwd(), file)}`);
    return {
      title: `Cluster spread: room traffic per master of a 3-master Redis Cluster (${p.pods} processes, ${p.rate} msg/s)`,
      params: { ...p },
      rows,
      notes,
      data,
    };
  },
};

function sumOf(nodes: NodeShare[], k: 'xadd' | 'commands'): number {
  return nodes.reduce((a, n) => a + n[k], 0);
}
