/**
 * Publish API and inbox: 2 gateway processes and 1 worker process on one Redis.
 *
 *  1. Throughput: POST /api/v1/publish requests/s one gateway accepts (202), from C keep-alive
 *     connections (a bounded loop on node:http, no extra dependency), with the request latency,
 *     then the time the worker takes to drain what was accepted (outbox deliveries/s).
 *  2. End-to-end latency: R receivers in one room, half on each gateway; publishes at a fixed rate
 *     carry performance.now() of the send in `data`; latency = receive time − send time (same
 *     process), through gateway → outbox → worker → adapter stream → both gateways → sockets.
 *  3. Inbox replay: 10,000 direct messages queued for an offline user; time from connect to the
 *     last `queued-messages` batch (`more: false`), repeated (nothing is acknowledged in between).
 *
 * Runs inside the suite: `BENCH_ONLY=publish npm run bench`. The numbers also go to .bench/publish.json.
 */
import http from 'http';
import path from 'path';
import { performance } from 'perf_hooks';
import { freePort, Managed, sleep, spawnTracked, waitPort } from './lib/proc';
import { envInt, Row, Stats, stats, writeBenchJson } from './lib/report';
import { connectMany, SioClient } from './lib/sio-client';
import { Cluster, DIST, ROOT, startCluster } from './lib/targets';
import type { Benchmark, BenchContext, BenchResult } from './lib/types';

const API_KEY = 'bench-publish-api-key-0123456789';

interface Params {
  requests: number;
  connections: number;
  payloadBytes: number;
  receivers: number;
  e2eMessages: number;
  e2eRate: number;
  replayMessages: number;
  replayRuns: number;
  sendWindow: number;
}

function params(): Params {
  return {
    requests: envInt('BENCH_PUBLISH_REQUESTS', 20000, 1, 1_000_000),
    connections: envInt('BENCH_PUBLISH_CONNECTIONS', 32, 1, 1024),
    payloadBytes: envInt('BENCH_PUBLISH_PAYLOAD_BYTES', 128, 0, 16000),
    receivers: envInt('BENCH_PUBLISH_RECEIVERS', 50, 2, 10000),
    e2eMessages: envInt('BENCH_PUBLISH_E2E_MESSAGES', 2000, 1, 100000),
    e2eRate: envInt('BENCH_PUBLISH_E2E_RATE', 200, 1, 100000),
    replayMessages: envInt('BENCH_PUBLISH_REPLAY_MESSAGES', 10000, 1, 100000),
    replayRuns: envInt('BENCH_PUBLISH_REPLAY_RUNS', 3, 1, 20),
    sendWindow: envInt('BENCH_PUBLISH_SEND_WINDOW', 64, 1, 10000),
  };
}

function abortIf(signal: AbortSignal): void {
  if (signal.aborted) throw new Error('aborted (benchmark time bound reached)');
}

/** One POST /api/v1/publish on a keep-alive agent; resolves with the status. */
function post(agent: http.Agent, port: number, body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/api/v1/publish',
        agent,
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(1000, () => req.destroy());
  });
}

async function metric(port: number, name: string): Promise<number> {
  const text = await new Promise<string>((resolve) => {
    const req = http.get(`http://127.0.0.1:${port}/metrics`, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve(t));
    });
    req.on('error', () => resolve(''));
  });
  return text
    .split('\n')
    .filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

async function startWorker(redisUrl: string, prefix: string): Promise<{ proc: Managed; port: number; metricsPort: number }> {
  const port = await freePort();
  const metricsPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOST: '127.0.0.1',
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    POD_NAME: `${prefix}-worker`,
    API_KEYS: API_KEY,
    LOG_LEVEL: 'warn',
    SHUTDOWN_DELAY_MS: '0',
    DRAIN_TIMEOUT_MS: '1000',
  };
  const proc = spawnTracked('worker', process.execPath, [path.join(DIST, 'services/worker/main.js')], env, { cwd: ROOT });
  await waitPort(port, 20000, proc);
  const end = Date.now() + 20000;
  while (!(await httpOk(`http://127.0.0.1:${metricsPort}/readyz`))) {
    if (!proc.alive() || Date.now() > end) throw new Error(`worker not ready:\n${proc.output().slice(-4000)}`);
    await sleep(50);
  }
  return { proc, port, metricsPort };
}

interface Numbers {
  throughput: {
    requests: number;
    accepted: number;
    failed: number;
    seconds: number;
    requestsPerSec: number;
    latencyMs: Stats;
    drainSeconds: number;
    drainedPerSec: number;
  };
  e2e: {
    messages: number;
    receivers: number;
    expected: number;
    unique: number;
    lost: number;
    duplicates: number;
    rate: number;
    latencyMs: Stats;
    publishErrors: number;
  };
  replay: {
    messages: number;
    appendSeconds: number;
    appendsPerSec: number;
    runs: Array<{ ms: number; toFirstBatchMs: number; batches: number; messages: number }>;
    medianMs: number;
    messagesPerSec: number;
  };
  cpuNote: string;
}

async function run(ctx: BenchContext, signal: AbortSignal): Promise<Numbers & { params: Params }> {
  const p = params();
  const redis = await ctx.redis();
  const prefix = `bpub${Math.random().toString(36).slice(2, 8)}`;
  ctx.log(`publish: starting 2 gateways and 1 worker (prefix ${prefix})`);
  const cluster: Cluster = await startCluster('gateway', 2, {
    redisUrl: redis.url,
    prefix,
    env: { API_KEYS: API_KEY, INBOX_MAX_LEN: String(Math.max(1000, p.replayMessages * 2)) },
  });
  const clients: SioClient[] = [];
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: p.connections });
  try {
    worker = await startWorker(redis.url, prefix);
    const gw = cluster.servers;
    const pad = 'x'.repeat(p.payloadBytes);

    // --- 1. throughput ---
    ctx.log(`publish: ${p.requests} requests from ${p.connections} keep-alive connections to one gateway`);
    // warm-up: connections open, code paths compiled
    const warmups = p.connections * 4;
    const warmAccepted = (
      await Promise.all(
        Array.from({ length: warmups }, () => post(agent, gw[0].port, JSON.stringify({ room: 'bench-nobody', event: 'warm', data: pad }))),
      )
    ).filter((s) => s === 202).length;
    if (warmAccepted !== warmups) throw new Error(`warm-up: ${warmups - warmAccepted} publishes refused`);
    const warmEnd0 = Date.now() + 20000;
    while ((await metric(worker.metricsPort, 'realtime_outbox_deliveries_total')) < warmups && Date.now() < warmEnd0) await sleep(20);
    const lat: number[] = [];
    let next = 0;
    let accepted = 0;
    let failed = 0;
    const delivered0 = await metric(worker.metricsPort, 'realtime_outbox_deliveries_total');
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: p.connections }, async () => {
        while (next < p.requests && !signal.aborted) {
          const i = next++;
          const s = performance.now();
          const status = await post(agent, gw[0].port, JSON.stringify({ room: 'bench-nobody', event: 'bench', data: { i, p: pad } }));
          lat.push(performance.now() - s);
          if (status === 202) accepted++;
          else failed++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    abortIf(signal);
    // the worker drains what was accepted (it started during the send)
    const drainEnd = Date.now() + 60000;
    while ((await metric(worker.metricsPort, 'realtime_outbox_deliveries_total')) - delivered0 < accepted && Date.now() < drainEnd)
      await sleep(20);
    const drainSeconds = (performance.now() - t0) / 1000;
    const drained = (await metric(worker.metricsPort, 'realtime_outbox_deliveries_total')) - delivered0;
    const throughput = {
      requests: p.requests,
      accepted,
      failed,
      seconds,
      requestsPerSec: accepted / seconds,
      latencyMs: stats(lat),
      drainSeconds,
      drainedPerSec: drained / drainSeconds,
    };
    ctx.log(
      `publish: ${Math.round(throughput.requestsPerSec)} req/s, p50 ${throughput.latencyMs.p50.toFixed(2)} ms, p99 ${throughput.latencyMs.p99.toFixed(2)} ms; worker drained ${drained} in ${drainSeconds.toFixed(2)} s`,
    );

    // --- 2. end-to-end latency to a room across 2 gateways ---
    ctx.log(`publish: ${p.receivers} receivers in one room over 2 gateways; ${p.e2eMessages} publishes at ${p.e2eRate}/s`);
    const R = p.receivers;
    const M = p.e2eMessages;
    const got = new Uint8Array(R * M);
    const e2eLat: number[] = [];
    let unique = 0;
    let duplicates = 0;
    let warm = 0;
    const RE = /"s":(-?\d+),"t":([\d.]+)/;
    const receivers = await connectMany(R, 50, async (i) => {
      const c = await SioClient.connect(gw[i % 2].url, { auth: await cluster.auth(`recv-${i}`) });
      c.onEvent = (raw) => {
        const now = performance.now();
        if (!raw.startsWith('42["e2e"')) return;
        const m = RE.exec(raw);
        if (!m) return;
        const s = Number(m[1]);
        if (s < 0) return void warm++;
        const k = i * M + s;
        if (got[k]) return void duplicates++;
        got[k] = 1;
        unique++;
        e2eLat.push(now - Number(m[2]));
      };
      return c;
    });
    clients.push(...receivers);
    for (const c of receivers) {
      const r = (await c.emitWithAck('join-room', 'bench-e2e')) as { ok?: boolean };
      if (!r?.ok) throw new Error(`join-room failed: ${JSON.stringify(r)}`);
    }
    // warm-up: every receiver on both gateways is reachable
    for (let w = 0; w < 20; w++)
      await post(agent, gw[w % 2].port, JSON.stringify({ room: 'bench-e2e', event: 'e2e', data: { s: -1, t: performance.now() } }));
    const warmEnd = Date.now() + 20000;
    while (warm < 20 * R && Date.now() < warmEnd) await sleep(20);
    if (warm < 20 * R) throw new Error(`warm-up: ${warm} of ${20 * R} deliveries (is the worker delivering?)`);
    abortIf(signal);
    let publishErrors = 0;
    const interval = 1000 / p.e2eRate;
    const start = performance.now();
    const inflight = new Set<Promise<void>>();
    for (let s = 0; s < M && !signal.aborted; s++) {
      const wait = start + s * interval - performance.now();
      if (wait > 1) await sleep(wait);
      const pr = post(
        agent,
        gw[s % 2].port,
        JSON.stringify({ room: 'bench-e2e', event: 'e2e', data: { s, t: performance.now(), p: pad } }),
      ).then((st) => {
        if (st !== 202) publishErrors++;
      });
      inflight.add(pr);
      void pr.finally(() => inflight.delete(pr));
      if (inflight.size >= 1000) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    const expected = (M - publishErrors) * R;
    const e2eEnd = Date.now() + 30000;
    let last = unique;
    let quietSince = Date.now();
    while (unique < expected && Date.now() < e2eEnd) {
      await sleep(50);
      if (unique !== last) {
        last = unique;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > 5000) break;
    }
    const e2e = {
      messages: M,
      receivers: R,
      expected,
      unique,
      lost: expected - unique,
      duplicates,
      rate: p.e2eRate,
      latencyMs: stats(e2eLat),
      publishErrors,
    };
    ctx.log(
      `publish: e2e p50 ${e2e.latencyMs.p50.toFixed(1)} ms, p99 ${e2e.latencyMs.p99.toFixed(1)} ms, ${unique}/${expected} deliveries`,
    );
    for (const c of receivers) c.terminate();
    abortIf(signal);

    // --- 3. inbox replay of 10,000 queued messages ---
    const N = p.replayMessages;
    const target = `inbox-${prefix}`;
    ctx.log(`publish: queueing ${N} direct messages for an offline user`);
    const sender = await SioClient.connect(gw[0].url, { auth: await cluster.auth('bench-sender') });
    clients.push(sender);
    let sent = 0;
    let appendErrors = 0;
    const a0 = performance.now();
    await Promise.all(
      Array.from({ length: p.sendWindow }, async () => {
        while (sent < N && !signal.aborted) {
          const i = sent++;
          const r = (await sender.emitWithAck('direct-message', { toUserId: target, text: `queued ${i}`, data: { i, p: pad } })) as {
            ok?: boolean;
          };
          if (!r?.ok) appendErrors++;
        }
      }),
    );
    const appendSeconds = (performance.now() - a0) / 1000;
    if (appendErrors) throw new Error(`${appendErrors} direct messages were refused while queueing`);
    abortIf(signal);
    const runs: Numbers['replay']['runs'] = [];
    for (let k = 0; k < p.replayRuns; k++) {
      let batches = 0;
      let messages = 0;
      let firstAt = 0;
      let done!: () => void;
      const finished = new Promise<void>((r) => (done = r));
      const c0 = performance.now();
      const rc = await SioClient.connect(gw[(k + 1) % 2].url, { auth: await cluster.auth(target) });
      rc.onEvent = (raw) => {
        if (!raw.startsWith('42["queued-messages"')) return;
        const [, body] = JSON.parse(raw.slice(2)) as [string, { messages: unknown[]; more: boolean }];
        if (!batches) firstAt = performance.now();
        batches++;
        messages += body.messages.length;
        if (!body.more) done();
      };
      const bound = sleep(60000).then(() => {
        throw new Error('inbox replay did not finish within 60 s');
      });
      await Promise.race([finished, bound]);
      const ms = performance.now() - c0;
      rc.terminate();
      if (messages !== N) throw new Error(`inbox replay: got ${messages} of ${N} messages`);
      runs.push({ ms, toFirstBatchMs: firstAt - c0, batches, messages });
      ctx.log(`publish: replay ${k + 1}/${p.replayRuns}: ${messages} messages in ${batches} batches, ${ms.toFixed(0)} ms`);
    }
    const medianMs = [...runs.map((r) => r.ms)].sort((x, y) => x - y)[Math.floor(runs.length / 2)];
    const replay = { messages: N, appendSeconds, appendsPerSec: N / appendSeconds, runs, medianMs, messagesPerSec: N / (medianMs / 1000) };
    return {
      params: p,
      throughput,
      e2e,
      replay,
      cpuNote: `${ctx.machine.cores} cores shared by the client, 2 gateways, 1 worker and Redis`,
    };
  } finally {
    agent.destroy();
    for (const c of clients) c.terminate();
    await worker?.proc.stop(3000);
    await cluster.stop();
  }
}

function rows(n: Numbers): Row[] {
  const row = (metric: string, v: number, digits = 0): Row => ({ metric, gateway: v, bare: NaN, digits, noRatio: true });
  return [
    row('publish API requests/s (202)', n.throughput.requestsPerSec),
    row('publish request latency p50 (ms)', n.throughput.latencyMs.p50, 2),
    row('publish request latency p99 (ms)', n.throughput.latencyMs.p99, 2),
    row('publish non-202 answers', n.throughput.failed),
    row('worker drain (deliveries/s)', n.throughput.drainedPerSec),
    row(`e2e room latency p50 (ms) @ ${n.e2e.rate}/s`, n.e2e.latencyMs.p50, 1),
    row('e2e room latency p90 (ms)', n.e2e.latencyMs.p90, 1),
    row('e2e room latency p99 (ms)', n.e2e.latencyMs.p99, 1),
    row('e2e room latency max (ms)', n.e2e.latencyMs.max, 1),
    row('e2e lost deliveries', n.e2e.lost),
    row('e2e duplicate deliveries', n.e2e.duplicates),
    row(`direct messages queued/s (${n.replay.messages})`, n.replay.appendsPerSec),
    row(`inbox replay of ${n.replay.messages} (ms, median)`, n.replay.medianMs),
    row('inbox replay messages/s', n.replay.messagesPerSec),
    row('inbox replay to first batch (ms)', Math.min(...n.replay.runs.map((r) => r.toFirstBatchMs)), 1),
  ];
}

function notes(n: Numbers & { params: Params }): string[] {
  const p = n.params;
  return [
    `throughput: ${p.requests} POSTs to one gateway from ${p.connections} keep-alive connections (node:http), room target with no members, ${p.payloadBytes} B padding`,
    `e2e: ${p.receivers} receivers in one room, half on each gateway; ${p.e2eMessages} publishes at ${p.e2eRate}/s alternating gateways; send time (performance.now()) travels in data`,
    `replay: ${p.replayMessages} direct messages queued (window ${p.sendWindow}), then connect → last queued-messages batch (more=false), ${p.replayRuns} runs, nothing acknowledged`,
    'no bare Socket.IO column: the publish API, outbox and inbox have no bare equivalent',
    n.cpuNote,
  ];
}

export const publish: Benchmark = {
  name: 'publish',
  description: 'publish API req/s, end-to-end publish → room latency over 2 gateways + worker, inbox replay of 10,000 messages',
  timeoutMs: 300000,
  async run(ctx, signal): Promise<BenchResult> {
    const n = await run(ctx, signal);
    const file = writeBenchJson(ctx, 'publish', n);
    ctx.log(`publish: numbers in ${path.relative(process.cwd(), file) || file}`);
    return {
      title: 'Publish API, outbox delivery and inbox replay (2 gateways, 1 worker)',
      params: { ...n.params },
      rows: rows(n),
      notes: notes(n),
      data: { throughput: n.throughput, e2e: n.e2e, replay: n.replay },
    };
  },
};
