/**
 * The forwarding hop (sticky sessions optional, services/gateway/forwarding.ts).
 *
 *  1. A polling exchange through a pod that does not hold the session vs directly on the pod
 *     that does: 2 gateway processes, C raw Engine.IO long-polling clients (keep-alive HTTP)
 *     whose sessions live on gateway 0. An exchange is one Socket.IO event with an ack
 *     (`leave-room` of a room the socket is not in: no Redis) sent in a POST, its ack read from
 *     the long-polling GET. Direct: every request goes to gateway 0; through a non-owner: every
 *     request goes to gateway 1, which forwards it. Latency per exchange (POST sent to ack read,
 *     same process) and the server CPU (both processes, /proc) per 1,000 exchanges. Several
 *     rounds, fresh sessions each, order alternating; medians.
 *  2. The share of Engine.IO requests that get forwarded behind a round-robin balancer
 *     (bench/lib/balancer.ts, per request like HAProxy) in front of 3 gateways, without and with
 *     cookie affinity, for stock socket.io-client clients (default options: polling then
 *     websocket; and long-polling only) that connect, join, send messages with acks and leave.
 *     With affinity the client keeps cookies (`withCredentials: true`, as browsers do). Plus bare
 *     Socket.IO 4.8 behind the same balancer without cookies, for what forwarding fixes.
 *
 * `BENCH_ONLY=hop npm run bench`; the numbers also go to .bench/hop.json.
 */
import http from 'http';
import { performance } from 'perf_hooks';
import { io, Socket } from 'socket.io-client';
import { Balancer, startBalancer } from './lib/balancer';
import { cpuMs, sleep } from './lib/proc';
import { envInt, median, Row, Stats, stats, table, writeBenchJson } from './lib/report';
import { Cluster, startCluster } from './lib/targets';
import type { Benchmark, BenchContext, BenchResult } from './lib/types';

interface Params {
  clients: number;
  exchanges: number;
  rounds: number;
  warmup: number;
  shareClients: number;
  shareMessages: number;
}

function params(): Params {
  return {
    clients: envInt('BENCH_HOP_CLIENTS', 20, 1, 1000),
    exchanges: envInt('BENCH_HOP_EXCHANGES', 250, 10, 100000),
    rounds: envInt('BENCH_HOP_ROUNDS', 4, 1, 20),
    warmup: envInt('BENCH_HOP_WARMUP', 50, 0, 10000),
    shareClients: envInt('BENCH_HOP_SHARE_CLIENTS', 30, 1, 1000),
    shareMessages: envInt('BENCH_HOP_SHARE_MESSAGES', 10, 1, 1000),
  };
}

function abortIf(signal: AbortSignal): void {
  if (signal.aborted) throw new Error('aborted (benchmark time bound reached)');
}

/** One request on a keep-alive agent; resolves with status and body (status 0 on a failure). */
function send(agent: http.Agent, port: number, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent, headers: body === undefined ? {} : { 'content-type': 'text/plain;charset=UTF-8' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', () => resolve({ status: 0, body: text }));
      },
    );
    req.setTimeout(30000, () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end(body);
  });
}

/** A raw Engine.IO v4 long-polling client in `/`: one GET always outstanding, events with acks POSTed. */
class Poller {
  sid = '';
  private acks = new Map<number, { ok: () => void; fail: (e: Error) => void }>();
  private failure?: Error;
  private next = 0;
  private closed = false;
  private polling?: Promise<void>;
  /** The gateway (port) every request of the session goes to now. */
  port = 0;
  constructor(private agent: http.Agent) {}

  private get path(): string {
    return `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(this.sid)}`;
  }

  /** Handshake and CONNECT on `owner`. */
  async open(owner: number, auth: Record<string, unknown> | undefined): Promise<void> {
    this.port = owner;
    const hs = await send(this.agent, owner, 'GET', '/socket.io/?EIO=4&transport=polling');
    if (hs.status !== 200) throw new Error(`handshake: ${hs.status} ${hs.body}`);
    this.sid = JSON.parse(hs.body.slice(1)).sid;
    const c = await send(this.agent, owner, 'POST', this.path, `40${auth ? JSON.stringify(auth) : ''}`);
    if (c.body !== 'ok') throw new Error(`CONNECT: ${c.status} ${c.body}`);
    for (let i = 0; i < 20; i++) {
      const r = await send(this.agent, owner, 'GET', this.path);
      if (r.status !== 200) throw new Error(`GET: ${r.status} ${r.body}`);
      if (r.body.split('\x1e').some((p) => p.startsWith('42["queued-messages"'))) break;
    }
    this.polling = this.poll().catch((e: Error) => {
      this.failure = e;
      for (const a of this.acks.values()) a.fail(e);
    });
  }

  private async poll(): Promise<void> {
    while (!this.closed) {
      const r = await send(this.agent, this.port, 'GET', this.path);
      if (r.status !== 200) {
        if (!this.closed) throw new Error(`long-poll GET answered ${r.status}: ${r.body}`);
        return;
      }
      for (const p of r.body.split('\x1e')) {
        if (p.startsWith('43')) this.acks.get(Number(/^43(\d+)/.exec(p)?.[1]))?.ok();
        else if (p === '2') void send(this.agent, this.port, 'POST', this.path, '3');
      }
    }
  }

  /** One exchange; resolves with its latency (ms). */
  async exchange(): Promise<number> {
    const id = this.next++;
    const t0 = performance.now();
    if (this.failure) throw this.failure;
    const acked = new Promise<void>((ok, fail) => this.acks.set(id, { ok, fail }));
    acked.catch(() => undefined); // a failure is thrown by the await below, or not at all
    const posted = await send(this.agent, this.port, 'POST', this.path, `42${id}["leave-room","hop-nowhere"]`);
    if (posted.body !== 'ok') throw new Error(`POST: ${posted.status} ${posted.body}`);
    await acked;
    this.acks.delete(id);
    return performance.now() - t0;
  }

  async close(): Promise<void> {
    this.closed = true;
    await send(this.agent, this.port, 'POST', this.path, '1');
    await this.polling;
  }
}

/** Sum of a metric (all label sets passing `filter`) on a gateway's /metrics. */
async function scrape(port: number, name: string, filter: (labels: string) => boolean = () => true): Promise<number> {
  const text = await new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve(t));
    });
    req.on('error', () => resolve(''));
  });
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && filter(m[2] ?? '')) sum += Number(m[3]);
  }
  return sum;
}

interface PhaseResult {
  exchanges: number;
  latencyMs: Stats;
  cpuMs: { owner: number; other: number };
  cpuPer1k: number;
  forwarded: number;
}

/** C pollers with sessions on gateway 0 run E exchanges each, every request to `via` (0: direct, 1: through the other pod). */
async function phase(cluster: Cluster, via: 0 | 1, p: Params, signal: AbortSignal): Promise<PhaseResult> {
  const [owner, other] = cluster.servers;
  const agent = new http.Agent({ keepAlive: true, maxSockets: p.clients * 2 + 4 });
  const pollers: Poller[] = [];
  try {
    for (let i = 0; i < p.clients; i++) {
      const c = new Poller(agent);
      await c.open(owner.port, await cluster.auth(`hop-${via}-${i}-${Date.now()}`));
      pollers.push(c);
    }
    // Move the sessions' requests to `via` (a long-poll GET already waiting on the owner finishes with the next answer).
    for (const c of pollers) c.port = cluster.servers[via].port;
    for (const c of pollers) for (let k = 0; k < p.warmup; k++) await c.exchange();
    abortIf(signal);
    const fwd0 = await scrape(other.metricsPort!, 'realtime_gateway_forwarded_requests_total', (l) => l.includes('outcome="ok"'));
    const cpu0 = [cpuMs(owner.pid), cpuMs(other.pid)];
    const lat: number[] = [];
    await Promise.all(
      pollers.map(async (c) => {
        for (let k = 0; k < p.exchanges && !signal.aborted; k++) lat.push(await c.exchange());
      }),
    );
    const cpu = [cpuMs(owner.pid) - cpu0[0], cpuMs(other.pid) - cpu0[1]];
    const fwd = (await scrape(other.metricsPort!, 'realtime_gateway_forwarded_requests_total', (l) => l.includes('outcome="ok"'))) - fwd0;
    abortIf(signal);
    return {
      exchanges: lat.length,
      latencyMs: stats(lat),
      cpuMs: { owner: cpu[0], other: cpu[1] },
      cpuPer1k: ((cpu[0] + cpu[1]) * 1000) / lat.length,
      forwarded: fwd,
    };
  } finally {
    await Promise.all(pollers.map((c) => c.close()));
    agent.destroy();
  }
}

interface ShareResult {
  clients: number;
  connected: number;
  acked: number;
  engineRequests: number;
  forwarded: number;
  share: number;
  transports: string[];
}

/** Stock socket.io-client clients through `lb`: connect, join, send with acks, leave; forwarded requests counted on every gateway. */
async function share(cluster: Cluster, lb: Balancer, opts: { transports?: string[]; cookies: boolean }, p: Params): Promise<ShareResult> {
  const metrics = cluster.servers.map((s) => s.metricsPort).filter((x): x is number => x !== undefined);
  const forwardedNow = async () => {
    let n = 0;
    for (const port of metrics) n += await scrape(port, 'realtime_gateway_forwarded_requests_total', (l) => l.includes('outcome="ok"'));
    return n;
  };
  const fwd0 = await forwardedNow();
  const req0 = lb.counts.engineRequests + lb.counts.upgrades;
  const room = `hop-share-${Math.random().toString(36).slice(2, 8)}`;
  let connected = 0;
  let acked = 0;
  const transports = new Set<string>();
  const one = async (i: number) => {
    const s: Socket = io(lb.url, {
      auth: await cluster.auth(`share-${i}-${room}`),
      forceNew: true,
      reconnection: false,
      timeout: 5000,
      withCredentials: opts.cookies,
      ...(opts.transports ? { transports: opts.transports } : {}),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', (e) => reject(e));
        setTimeout(() => reject(new Error('connect timeout')), 6000);
      });
      connected++;
      await s.timeout(5000).emitWithAck('join-room', room);
      for (let k = 0; k < p.shareMessages; k++) {
        const a = await s.timeout(5000).emitWithAck('message', { roomId: room, text: `m${k}` });
        if (a?.ok !== false) acked++;
      }
      await sleep(300);
      transports.add(s.io.engine?.transport?.name ?? 'closed');
    } catch {
      /* counted as not connected / not acked */
    } finally {
      s.disconnect();
    }
  };
  for (let i = 0; i < p.shareClients; i += 10)
    await Promise.all(Array.from({ length: Math.min(10, p.shareClients - i) }, (_, k) => one(i + k)));
  await sleep(200);
  const engineRequests = lb.counts.engineRequests + lb.counts.upgrades - req0;
  const forwarded = metrics.length ? (await forwardedNow()) - fwd0 : NaN;
  return {
    clients: p.shareClients,
    connected,
    acked,
    engineRequests,
    forwarded,
    share: forwarded / engineRequests,
    transports: [...transports],
  };
}

async function run(ctx: BenchContext, signal: AbortSignal): Promise<BenchResult> {
  const p = params();
  const redis = await ctx.redis();
  const prefix = `bhop${Math.random().toString(36).slice(2, 8)}`;
  ctx.log(`hop: 2 gateways, ${p.clients} long-polling clients x ${p.exchanges} exchanges, ${p.rounds} rounds`);
  const pair = await startCluster('gateway', 2, { redisUrl: redis.url, prefix });
  const rounds: Array<{ direct: PhaseResult; forwarded: PhaseResult; order: string }> = [];
  try {
    for (let r = 0; r < p.rounds; r++) {
      const forwardFirst = r % 2 === 1;
      const res: Partial<{ direct: PhaseResult; forwarded: PhaseResult }> = {};
      for (const via of forwardFirst ? ([1, 0] as const) : ([0, 1] as const)) {
        res[via === 0 ? 'direct' : 'forwarded'] = await phase(pair, via, p, signal);
        await sleep(300);
      }
      rounds.push({ direct: res.direct!, forwarded: res.forwarded!, order: forwardFirst ? 'forwarded,direct' : 'direct,forwarded' });
      ctx.log(
        `hop: round ${r + 1}: p50 ${res.direct!.latencyMs.p50.toFixed(2)} direct / ${res.forwarded!.latencyMs.p50.toFixed(2)} forwarded ms, ` +
          `CPU ${res.direct!.cpuPer1k.toFixed(0)} / ${res.forwarded!.cpuPer1k.toFixed(0)} ms per 1k`,
      );
    }
  } finally {
    await pair.stop();
  }

  ctx.log(`hop: share of forwarded requests, 3 gateways behind a round-robin balancer, ${p.shareClients} clients`);
  const trio = await startCluster('gateway', 3, { redisUrl: redis.url, prefix: `${prefix}s` });
  const shares: Record<string, ShareResult> = {};
  try {
    for (const [name, transports] of [
      ['default', undefined],
      ['polling', ['polling']],
    ] as const) {
      for (const cookies of [false, true]) {
        abortIf(signal);
        const lb = await startBalancer(
          trio.servers.map((s) => s.port),
          { sticky: cookies },
        );
        try {
          shares[`${name}/${cookies ? 'cookie' : 'none'}`] = await share(
            trio,
            lb,
            { transports: transports ? [...transports] : undefined, cookies },
            p,
          );
        } finally {
          await lb.close();
        }
      }
    }
  } finally {
    await trio.stop();
  }
  const bare = await startCluster('bare', 3, { redisUrl: redis.url, prefix: `${prefix}b` });
  let bareShare: ShareResult;
  try {
    const lb = await startBalancer(bare.servers.map((s) => s.port));
    try {
      bareShare = await share(bare, lb, { cookies: false }, p);
    } finally {
      await lb.close();
    }
  } finally {
    await bare.stop();
  }

  const med = (f: (x: { direct: PhaseResult; forwarded: PhaseResult }) => number) => median(rounds.map(f));
  const rows: Row[] = [
    {
      metric: 'polling exchange latency p50 (ms)',
      gateway: med((x) => x.forwarded.latencyMs.p50),
      bare: med((x) => x.direct.latencyMs.p50),
      digits: 2,
    },
    {
      metric: 'polling exchange latency p90 (ms)',
      gateway: med((x) => x.forwarded.latencyMs.p90),
      bare: med((x) => x.direct.latencyMs.p90),
      digits: 2,
    },
    {
      metric: 'polling exchange latency p99 (ms)',
      gateway: med((x) => x.forwarded.latencyMs.p99),
      bare: med((x) => x.direct.latencyMs.p99),
      digits: 2,
    },
    {
      metric: 'server CPU per 1,000 exchanges (ms, both pods)',
      gateway: med((x) => x.forwarded.cpuPer1k),
      bare: med((x) => x.direct.cpuPer1k),
      digits: 0,
    },
    {
      metric: '  of which the pod holding the session',
      gateway: med((x) => (x.forwarded.cpuMs.owner * 1000) / x.forwarded.exchanges),
      bare: med((x) => (x.direct.cpuMs.owner * 1000) / x.direct.exchanges),
      digits: 0,
    },
    {
      metric: '  of which the other pod (forwarding)',
      gateway: med((x) => (x.forwarded.cpuMs.other * 1000) / x.forwarded.exchanges),
      bare: med((x) => (x.direct.cpuMs.other * 1000) / x.direct.exchanges),
      digits: 0,
      noRatio: true,
    },
    {
      metric: 'requests forwarded per exchange',
      gateway: med((x) => x.forwarded.forwarded / x.forwarded.exchanges),
      bare: med((x) => x.direct.forwarded / x.direct.exchanges),
      digits: 2,
      noRatio: true,
    },
  ];
  const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');
  const shareRow = (label: string, s: ShareResult) => [
    label,
    `${s.connected}/${s.clients}`,
    `${s.acked}/${s.clients * p.shareMessages}`,
    String(s.engineRequests),
    Number.isFinite(s.forwarded) ? String(s.forwarded) : 'n/a',
    pct(s.share),
    s.transports.join(','),
  ];
  const extra = [
    `Share of Engine.IO requests forwarded, 3 gateways behind a round-robin balancer (${p.shareClients} clients, ${p.shareMessages} messages each):`,
    table(
      ['clients, balancer', 'connected', 'acked', 'Engine.IO requests', 'forwarded', 'share forwarded', 'transport at the end'],
      [
        shareRow('gateway, default options, no cookies', shares['default/none']),
        shareRow('gateway, default options, cookie affinity', shares['default/cookie']),
        shareRow('gateway, long-polling only, no cookies', shares['polling/none']),
        shareRow('gateway, long-polling only, cookie affinity', shares['polling/cookie']),
        shareRow('bare Socket.IO, default options, no cookies', bareShare),
      ],
      [false, true, true, true, true, true, false],
    ),
  ].join('\n');
  const data = { params: p, rounds, shares, bare: bareShare };
  writeBenchJson(ctx, 'hop', data);
  return {
    title: `Forwarding hop: a long-polling exchange through the pod that does not hold the session vs direct (${p.clients} clients x ${p.exchanges} exchanges, medians of ${p.rounds} rounds)`,
    columns: ['via another pod', 'direct'],
    params: { ...p },
    rows,
    notes: [
      'An exchange: one event with an ack POSTed, its ack read from the long-polling GET (`leave-room` of a room the socket is not in: no Redis).',
      'Through another pod, every POST and GET is forwarded (keep-alive connections between the pods); the CPU is that of both gateway processes.',
    ],
    extra,
    data,
  };
}

export const hop: Benchmark = {
  name: 'hop',
  description: 'polling exchanges through a non-owner pod vs direct; share of forwarded requests with and without cookie affinity',
  timeoutMs: 10 * 60 * 1000,
  run,
};
