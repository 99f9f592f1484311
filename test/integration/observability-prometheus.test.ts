import { ChildProcess, spawn } from 'child_process';
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import Redis from 'ioredis';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  client,
  closeClients,
  connect,
  GatewayProcess,
  seenOnce,
  spawnService,
  token,
  uniquePrefix,
  until,
  waitFor,
} from '../helpers/cluster';
import { freePort, startRedis, TestRedis, waitPort } from '../helpers/redis';
import {
  alertGroups,
  dataPanels,
  findBinary,
  INSTALL_HINT,
  loadDashboards,
  panelQueries,
  RULES_FILE,
  substitute,
  VARIABLES,
} from './observability-shared';

// The dashboards and alert rules against real data: a redis-server, two gateways, a third gateway
// that gets SIGKILLed, and a worker (built processes), scraped every second by a real Prometheus
// that also loads the alert rules. After traffic that exercises every panel (rooms, direct
// messages, publishes, refused connections, bad events, rate limits, a slow consumer, a
// recovery, a dead letter, a reaped pod, a Redis outage), every panel query of every dashboard
// is run through the HTTP API and must return data; every alert expression must parse and every
// rule must evaluate without error.

jest.setTimeout(120000);

const prometheusBin = findBinary('prometheus', 'PROMETHEUS');
const API_KEY = 'obs-test-api-key';
const JOB_GATEWAY = 'obs-realtime-gateway-gateway';
const JOB_WORKER = 'obs-realtime-gateway-worker';
/** Panels that may legitimately show only zeros after this traffic (they still must return series). */
const MAY_BE_ZERO: Record<string, string> = {
  'Outbox stream': 'delivered entries are deleted at once, so length, lag and pending are usually back to 0 when sampled',
  'Oldest pending entry age': 'nothing is pending for long once the dead letter has moved',
  'Heartbeat age': 'gateways report 0 (worker-only gauge) and live heartbeats are at most 0.5 s old',
  'Rebalancing moves per pod':
    'rebalancing is off here (the test places its clients); test/integration/rebalance.test.ts and the e2e scale-out move connections',
};

let redis: TestRedis;
let prefix: string;
let tmp: string;
let prom: ChildProcess | undefined;
let promOut = '';
let promUrl = '';
const services: Record<string, GatewayProcess> = {};

/** One HTTP request on loopback. */
function request(
  method: string,
  url: string,
  body?: string,
  headers: Record<string, string> = {},
  ms = 10000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method,
        agent: false,
        headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on('error', reject);
      },
    );
    req.setTimeout(ms, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

type Sample = { metric: Record<string, string>; value: [number, string] };
type PromAnswer = { status: string; errorType?: string; error?: string; data?: { resultType: string; result: Sample[] } };

/** An instant query through Prometheus' HTTP API (the way Grafana runs it). */
async function query(expr: string): Promise<PromAnswer> {
  const r = await request('POST', `${promUrl}/api/v1/query`, `query=${encodeURIComponent(expr)}`, {
    'content-type': 'application/x-www-form-urlencoded',
  });
  return JSON.parse(r.body) as PromAnswer;
}

/** Values of an instant query (throws when it does not parse). */
async function values(expr: string): Promise<number[]> {
  const a = await query(expr);
  if (a.status !== 'success') throw new Error(`${expr}: ${a.errorType}: ${a.error}`);
  return (a.data?.result ?? []).map((s) => Number(s.value[1]));
}

/** Resolves once `expr` has a sample for which `pred` holds (Prometheus has scraped it), or rejects after `ms`. */
function untilQuery(expr: string, pred: (v: number) => boolean = () => true, ms = 15000): Promise<void> {
  return until(async () => (await values(expr)).some(pred), ms, `Prometheus: ${expr}`);
}

/** Alerts Prometheus currently holds (pending or firing). */
async function activeAlerts(): Promise<Array<{ labels: Record<string, string>; state: string }>> {
  const r = await request('GET', `${promUrl}/api/v1/alerts`);
  return JSON.parse(r.body).data.alerts;
}

/** Starts Prometheus scraping every service each second, with the alert rules loaded. */
async function startPrometheus(): Promise<void> {
  if (!prometheusBin) throw new Error(`prometheus not found. ${INSTALL_HINT}`);
  const port = await freePort();
  const target = (svc: GatewayProcess, pod: string, component: string) => ({
    targets: [`127.0.0.1:${svc.metricsPort}`],
    labels: { namespace: 'test', pod, component },
  });
  // As the chart's ServiceMonitor does: job = Service name, plus namespace, pod and component target labels.
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [RULES_FILE],
    scrape_configs: [
      { job_name: JOB_GATEWAY, static_configs: ['gw-a', 'gw-b', 'gw-doomed'].map((p) => target(services[p], `obs-${p}`, 'gateway')) },
      { job_name: JOB_WORKER, static_configs: [target(services.worker, 'obs-worker', 'worker')] },
    ],
  };
  fs.writeFileSync(path.join(tmp, 'prometheus.yml'), JSON.stringify(config, null, 2)); // JSON is YAML
  prom = spawn(
    prometheusBin,
    [
      `--config.file=${path.join(tmp, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(tmp, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prom.stdout?.on('data', (d) => (promOut += d));
  prom.stderr?.on('data', (d) => (promOut += d));
  promUrl = `http://127.0.0.1:${port}`;
  await waitPort(port, 20000);
  await until(
    async () => (await request('GET', `${promUrl}/-/ready`).catch(() => ({ status: 0 }))).status === 200,
    20000,
    'Prometheus ready',
  );
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-prom-'));
  redis = await startRedis({ appendonly: true }); // an own instance (it gets stopped), AOF so the outage loses nothing
  prefix = uniquePrefix();
  const common = {
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: prefix,
    API_KEYS: API_KEY,
    HEARTBEAT_INTERVAL_MS: '500',
    PRESENCE_GRACE_MS: '500',
    DRAIN_TIMEOUT_MS: '1000',
  };
  const started = await Promise.allSettled([
    spawnService('gateway', { ...common, POD_NAME: 'obs-gw-a' }),
    // gw-b: a small per-socket event budget and small outbound buffer marks (rate limiting and slow consumers)
    spawnService('gateway', {
      ...common,
      POD_NAME: 'obs-gw-b',
      RATE_LIMIT_EVENTS_PER_SECOND: '5',
      RATE_LIMIT_BURST: '10',
      OUTBOUND_BUFFER_SOFT_BYTES: '16384',
      OUTBOUND_BUFFER_MAX_BYTES: '32768',
    }),
    spawnService('gateway', { ...common, POD_NAME: 'obs-gw-doomed' }),
    // the worker dead-letters after one failed attempt, reclaims after 1 s, trims inboxes older than 2 s,
    // and reaps a gateway silent for 3 x 3 s: long enough for the live ones to ride out the Redis outage
    spawnService('worker', {
      ...common,
      POD_NAME: 'obs-worker',
      WORKER_MAX_ATTEMPTS: '1',
      WORKER_VISIBILITY_TIMEOUT_MS: '1000',
      INBOX_MAX_AGE_MS: '2000',
      HEARTBEAT_INTERVAL_MS: '3000',
    }),
  ]);
  ['gw-a', 'gw-b', 'gw-doomed', 'worker'].forEach((name, i) => {
    const r = started[i];
    if (r.status === 'fulfilled') services[name] = r.value; // every started process is killed in afterAll
  });
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  await startPrometheus();
  await untilQuery(`count(up{job=~"${JOB_GATEWAY}|${JOB_WORKER}"} == 1) == 4`, () => true, 20000);
});

afterAll(async () => {
  closeClients();
  if (prom && prom.exitCode === null) {
    const exited = new Promise((r) => prom!.once('exit', r));
    prom.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    if (prom.exitCode === null) prom.kill('SIGKILL');
  }
  await Promise.allSettled(Object.values(services).map((s) => s.kill('SIGKILL')));
  await redis?.stop().catch(() => undefined);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** POST /api/v1/publish on the gateway `svc`. */
function publish(svc: GatewayProcess, body: unknown, key = API_KEY) {
  return request('POST', `${svc.url}/api/v1/publish`, JSON.stringify(body), {
    'content-type': 'application/json',
    authorization: `Bearer ${key}`,
  });
}

/**
 * A raw Engine.IO long-polling client in `/` that joins `room` and then never polls again: the
 * server can only buffer for it, so it becomes a slow consumer.
 */
async function stalledPoller(svc: GatewayProcess, userId: string, room: string): Promise<void> {
  const base = `${svc.url}/socket.io/?EIO=4&transport=polling`;
  const open = await request('GET', base);
  const sid = JSON.parse(open.body.slice(1)).sid as string;
  const url = `${base}&sid=${encodeURIComponent(sid)}`;
  const post = async (payload: string) =>
    expect(await request('POST', url, payload, { 'content-type': 'text/plain;charset=UTF-8' })).toEqual({ status: 200, body: 'ok' });
  let seen = '';
  const readUntil = async (what: string) => {
    for (let i = 0; i < 20 && !seen.includes(what); i++) seen += '\x1e' + (await request('GET', url)).body;
    expect(seen).toContain(what);
  };
  await post(`40${JSON.stringify({ token: await token(userId) })}`);
  await readUntil('\x1e40{"sid"');
  await post(`421${JSON.stringify(['join-room', room])}`);
  await readUntil(`431[{"ok":true,"room":"${room}"`);
}

/**
 * A raw long-polling session opened on `owner` whose requests then reach `other` (a balancer
 * without stickiness): `other` forwards them (realtime_gateway_forwarded_requests_total, ok); a
 * made-up session id finds no owner (no_owner, 400).
 */
async function forwardedPoller(owner: GatewayProcess, other: GatewayProcess, userId: string): Promise<void> {
  const open = await request('GET', `${owner.url}/socket.io/?EIO=4&transport=polling`);
  const sid = JSON.parse(open.body.slice(1)).sid as string;
  const url = `${other.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
  const text = { 'content-type': 'text/plain;charset=UTF-8' };
  expect(await request('POST', url, `40${JSON.stringify({ token: await token(userId) })}`, text)).toEqual({ status: 200, body: 'ok' });
  expect((await request('GET', url)).body).toContain('40{"sid"');
  expect(await request('POST', url, '1', text)).toEqual({ status: 200, body: 'ok' });
  expect((await request('GET', `${other.url}/socket.io/?EIO=4&transport=polling&sid=made-up`)).status).toBe(400);
}

/**
 * One round of the everyday traffic, on the clients that stay connected (`alice` on gw-a, `bob`
 * and `spammer` on gw-b, `root` in /admin). Run twice, with a scrape in between: a labelled
 * counter appears at its first increment, so rate() needs a second one to show anything.
 */
async function round(n: number, c: { alice: ClientSocket; bob: ClientSocket; root: ClientSocket; spammer: ClientSocket }): Promise<void> {
  const [a, b] = [services['gw-a'], services['gw-b']];
  const { alice, bob, root, spammer } = c;

  // rooms and direct messages across pods
  const bobGot = waitFor(bob, 'message', (m: { text?: string }) => m.text === `hello ${n}`);
  expect(await alice.emitWithAck('message', { roomId: 'lobby', text: `hello ${n}` })).toMatchObject({ ok: true });
  await bobGot;
  const dm = waitFor(bob, 'direct-message', (m: { text?: string }) => m.text === `psst ${n}`);
  expect(await alice.emitWithAck('direct-message', { toUserId: 'bob', text: `psst ${n}` })).toMatchObject({ ok: true });
  await dm;
  expect(await root.emitWithAck('admin:stats')).toMatchObject({ ok: true });

  // a workspace namespace: connect, join, message, leave (connects, disconnects, presence transitions)
  const erin = await connect(`${a.url}/workspace-acme`, { token: await token(`erin-${n}`, { workspaces: ['acme'] }) });
  expect(await erin.emitWithAck('join-room', 'team')).toMatchObject({ ok: true });
  expect(await erin.emitWithAck('message', { roomId: 'team', text: 'in the workspace' })).toMatchObject({ ok: true });
  erin.disconnect();

  // the offline inbox: a direct message to a user who is away (and was here before) is replayed when they connect
  await seenOnce(b.url, `dave-${n}`);
  expect(await alice.emitWithAck('direct-message', { toUserId: `dave-${n}`, text: 'while you were away' })).toMatchObject({ ok: true });
  const dave = client(b.url, { token: await token(`dave-${n}`) });
  const queued = await waitFor(dave, 'queued-messages', (q: { messages: unknown[] }) => q.messages.length > 0, 10000);
  expect(queued.messages).toHaveLength(1);

  // backend publishes through the API, delivered by the worker: a room, a user, a whole namespace; then refusals
  const fromApi = [
    waitFor(bob, 'announcement', (d: { n?: number }) => d.n === n, 10000),
    waitFor(bob, 'account', (d: { n?: number }) => d.n === n, 10000),
    waitFor(alice, 'broadcast-all', (d: { n?: number }) => d.n === n, 10000),
  ];
  expect((await publish(a, { room: 'lobby', event: 'announcement', data: { n } })).status).toBe(202);
  expect((await publish(a, { userId: 'bob', event: 'account', data: { n } })).status).toBe(202);
  expect((await publish(b, { event: 'broadcast-all', data: { n } })).status).toBe(202);
  await Promise.all(fromApi);
  expect((await publish(a, { room: 'user:bob', event: 'x', data: null })).status).toBe(400);
  expect((await publish(b, { event: 'x', data: null }, 'wrong-key')).status).toBe(401);

  // bad events (answered, or dropped without an ack) and refused connections
  expect(await alice.emitWithAck('join-room', 42)).toMatchObject({ ok: false, error: { code: 'bad_request' } });
  expect(await alice.emitWithAck('join-room', 'user:bob')).toMatchObject({ ok: false, error: { code: 'forbidden' } });
  expect(await alice.emitWithAck('no-such-event')).toMatchObject({ ok: false, error: { code: 'bad_request' } });
  alice.emit('message', { roomId: 'lobby', text: 'no ack' });
  alice.emit('no-such-event');
  await expect(connect(a.url, { token: 'not-a-jwt' })).rejects.toMatchObject({ message: 'unauthorized' });
  await expect(connect(`${b.url}/workspace-other`, { token: await token('erin', { workspaces: ['acme'] }) })).rejects.toMatchObject({
    message: 'forbidden',
  });

  // a per-socket cap: more roomIds than MAX_ROOM_IDS (16)
  const many = Array.from({ length: 17 }, (_, i) => `cap-${i}`);
  expect(await alice.emitWithAck('message', { roomIds: many, text: 'too many rooms' })).toMatchObject({
    ok: false,
    error: { code: 'limit_exceeded' },
  });

  // the per-socket event budget of gw-b (burst 10, 5/s)
  const answers = await Promise.all(Array.from({ length: 20 }, () => spammer.emitWithAck('get-room-members', 'lobby')));
  expect(answers.filter((x) => x.error?.code === 'rate_limited').length).toBeGreaterThan(0);

  // a long-polling session whose requests reach the other gateway: forwarded to its owner
  await forwardedPoller(a, b, `pat-${n}`);

  // connection state recovery: carol's transport closes, she reconnects and recovers her session
  const carol = client(
    a.url,
    { token: await token(`carol-${n}`) },
    { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0 },
  );
  await waitFor(carol, 'session', () => true, 10000); // carries the stream offset recovery resumes from
  expect(await carol.emitWithAck('join-room', 'lobby')).toMatchObject({ ok: true });
  const back = waitFor(carol, 'connect', () => true, 10000);
  (carol.io.engine as unknown as { close(): void }).close();
  await back;
  expect(carol.recovered).toBe(true);
}

/** Resolves once Prometheus has scraped every live target after this moment. */
async function nextScrape(): Promise<void> {
  const after = Date.now() / 1000;
  await untilQuery('min(timestamp(up{namespace="test", pod!="obs-gw-doomed"}))', (t) => t > after + 0.2);
}

test('traffic through every instrumented path reaches Prometheus', async () => {
  const [a, b] = [services['gw-a'], services['gw-b']];

  // a pod that dies with a socket on it: the worker reaps it (reaped sockets, presence transitions)
  const ghost = await connect(services['gw-doomed'].url, { token: await token('ghost') });
  expect(await ghost.emitWithAck('join-room', 'lobby')).toMatchObject({ ok: true });
  await services['gw-doomed'].kill('SIGKILL');

  // the clients that stay connected until the queries run (connection gauges, online users)
  const c = {
    alice: await connect(a.url, { token: await token('alice') }),
    bob: await connect(b.url, { token: await token('bob') }),
    root: await connect(`${a.url}/admin`, { token: await token('root', { roles: ['admin'] }) }),
    spammer: await connect(b.url, { token: await token('spammer') }),
  };
  for (const s of [c.alice, c.bob]) expect(await s.emitWithAck('join-room', 'lobby')).toMatchObject({ ok: true });

  await round(1, c);

  // one-offs (unlabelled counters, exported as 0 from the start):
  // a malformed entry written straight into the outbox fails delivery, then is dead-lettered
  const r = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    await r.xadd(`${prefix}:{outbox}`, '*', 'id', 'obs-malformed', 'data', '{}'); // no `event`
  } finally {
    r.disconnect();
  }
  // a slow consumer on gw-b: a stalled long-polling client in room "flood" has volatile messages
  // dropped (its transport is not writable), then holds more than the 32 KiB hard mark for longer
  // than the 1 s burst allowance, and is cut
  await stalledPoller(b, 'slowpoke', 'flood');
  const big = 'x'.repeat(4096);
  const flood = async (n: number, volatile = false) => {
    for (let i = 0; i < n; i++)
      expect(await c.alice.emitWithAck('message', { roomId: 'flood', text: big, volatile })).toMatchObject({ ok: true });
  };
  await flood(2, true);
  await flood(10);
  const flooded = Date.now();

  await nextScrape();
  // the burst allowance is a duration: nothing to await but the clock
  await new Promise((r) => setTimeout(r, Math.max(0, 1200 - (Date.now() - flooded))));
  await flood(2);
  await round(2, c);

  // Prometheus has it all: wait on the slowest paths (worker reap, dead letter, retention, slow consumer).
  const S = '{namespace="test"}';
  await untilQuery(`sum(realtime_presence_reaped_sockets_total${S})`, (v) => v > 0, 20000);
  await untilQuery(`sum(realtime_outbox_dead_letters_total${S})`, (v) => v > 0, 20000);
  await untilQuery(`sum(realtime_inbox_retention_trimmed_total${S})`, (v) => v > 0, 20000);
  await untilQuery(`sum(realtime_gateway_slow_consumer_disconnects_total${S})`, (v) => v > 0);
  await untilQuery(`sum(realtime_gateway_volatile_drops_total${S})`, (v) => v > 0);
  await untilQuery(`sum(realtime_gateway_recovery_successes_total${S})`, (v) => v >= 2);
  await untilQuery(`sum(realtime_presence_transitions_total{namespace="test", kind="offline"})`, (v) => v > 0);
  await untilQuery(`max(realtime_presence_online_users${S})`, (v) => v > 0);
  // the dead letter fires its alert (it has no `for`) on real data
  await until(
    async () => (await activeAlerts()).some((al) => al.labels.alertname === 'RealtimeOutboxDeadLetters' && al.state === 'firing'),
    15000,
    'RealtimeOutboxDeadLetters firing',
  );
});

test('a Redis outage shows as realtime_redis_up 0, Redis errors, and pending RealtimeRedisDown / RealtimeGatewayNoReadyGateway', async () => {
  const live = ['gw-a', 'gw-b', 'worker'].map((n) => services[n]);
  expect((await activeAlerts()).filter((al) => al.labels.alertname === 'RealtimeRedisDown')).toEqual([]);
  await redis.stop();
  try {
    await untilQuery('count(realtime_redis_up{namespace="test"} == 0) == 3', () => true, 15000);
    // Reconnect attempts keep failing: the error counters rise across scrapes (rate() shows them).
    await untilQuery('sum(rate(realtime_redis_errors_total{namespace="test", op="connection"}[1m]))', (v) => v > 0, 15000);
    await until(
      async () => {
        const names = (await activeAlerts()).map((al) => al.labels.alertname);
        return names.includes('RealtimeRedisDown') && names.includes('RealtimeGatewayNoReadyGateway');
      },
      15000,
      'RealtimeRedisDown and RealtimeGatewayNoReadyGateway pending',
    );
  } finally {
    await redis.restart();
  }
  for (const s of live) await until(async () => (await request('GET', `${s.url}/readyz`)).status === 200, 20000, `${s.url} ready again`);
  await untilQuery('count(realtime_redis_up{namespace="test"} == 1) == 3', () => true, 15000);
  await untilQuery('count(realtime_process_ready{namespace="test"} == 1) == 3', () => true, 15000);
  await untilQuery('sum(realtime_redis_errors_total{namespace="test", op="connection"})', (v) => v > 0);
});

describe('every dashboard query against real data', () => {
  const dashboards = loadDashboards();
  const cases = dashboards.flatMap((d) => dataPanels(d).map((p) => [d.file, p.title, d] as const));
  /** Largest value each panel showed, printed once: what the traffic made visible. */
  const seen: string[] = [];
  afterAll(() => {
    console.log(`panel maxima after the test traffic (${VARIABLES.__rate_interval} rate window):\n${seen.join('\n')}`);
  });

  test.each(cases)('%s / %s returns data', async (file, title, d) => {
    const queries = panelQueries(d).filter((q) => q.panel === title);
    const problems: string[] = [];
    let series = 0;
    let nonZero = false;
    let max = -Infinity;
    const empty: typeof queries = [];
    for (const q of queries) {
      const expr = substitute(q.expr);
      const a = await query(expr);
      if (a.status !== 'success') {
        problems.push(`${file} / "${title}" ${q.refId}: does not run: ${a.errorType}: ${a.error}\n  ${expr}`);
        continue;
      }
      const result = a.data?.result ?? [];
      series += result.length;
      if (!result.length) empty.push(q);
      for (const s of result) {
        const v = Number(s.value[1]);
        if (Number.isNaN(v)) continue;
        if (v !== 0) nonZero = true;
        max = Math.max(max, v);
      }
    }
    seen.push(`  ${file} / ${title}: ${series} series, max ${max === -Infinity ? 'NaN' : Number(max.toPrecision(3))}`);
    if (series === 0)
      problems.push(
        `${file} / "${title}": no target returned data:\n${queries.map((q) => `  ${q.refId}: ${substitute(q.expr)}`).join('\n')}`,
      );
    else if (empty.length)
      problems.push(`${file} / "${title}": ${empty.map((q) => `${q.refId} returned no data:\n  ${substitute(q.expr)}`).join('\n')}`);
    else if (!nonZero && !(title in MAY_BE_ZERO))
      problems.push(
        `${file} / "${title}": only zeros although the traffic exercised it:\n${queries.map((q) => `  ${q.refId}: ${substitute(q.expr)}`).join('\n')}`,
      );
    expect(problems).toEqual([]);
  });

  test('the namespace and pod variables list the scraped namespace and pods', async () => {
    for (const d of dashboards) {
      const vars = Object.fromEntries(d.json.templating.list.map((v) => [v.name, v]));
      for (const [name, want] of [
        ['namespace', ['test']],
        ['pod', ['obs-gw-a', 'obs-gw-b', 'obs-worker']],
      ] as const) {
        // label_values(<selector>, <label>) is what Grafana runs as /api/v1/label/<label>/values?match[]=<selector>
        const m = /^label_values\((.*), (\w+)\)$/.exec(vars[name].definition ?? '');
        expect(m?.[2]).toBe(name);
        const selector = substitute(m![1], { ...VARIABLES });
        const r = JSON.parse((await request('GET', `${promUrl}/api/v1/label/${name}/values?match[]=${encodeURIComponent(selector)}`)).body);
        expect({ dashboard: d.file, variable: name, status: r.status }).toEqual({ dashboard: d.file, variable: name, status: 'success' });
        expect(r.data).toEqual(expect.arrayContaining([...want]));
      }
    }
  });
});

describe('alert rules against real data', () => {
  const rules = alertGroups().flatMap((g) => g.rules.map((r) => [r.alert ?? r.record ?? '?', r.expr] as const));

  test.each(rules)('%s: the expression runs', async (_name, expr) => {
    const a = await query(expr);
    expect({ status: a.status, error: a.error }).toEqual({ status: 'success', error: undefined });
  });

  test('Prometheus loaded every rule and evaluates each without error', async () => {
    const r = JSON.parse((await request('GET', `${promUrl}/api/v1/rules`)).body);
    const loaded = r.data.groups.flatMap((g: { rules: Array<{ name: string; health: string; lastError?: string }> }) => g.rules);
    expect(loaded.map((x: { name: string }) => x.name).sort()).toEqual(rules.map(([n]) => n).sort());
    expect(loaded.filter((x: { health: string }) => x.health !== 'ok')).toEqual([]);
    expect(promOut).not.toMatch(/level=error/);
  });
});
