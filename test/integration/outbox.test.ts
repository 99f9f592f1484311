import { randomUUID } from 'crypto';
import http from 'http';
import Redis from 'ioredis';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  client,
  closeClients,
  collect,
  GatewayProcess,
  metricValue,
  RunningGateway,
  spawnService,
  startGateways,
  startWorker,
  token,
  uniquePrefix,
  until,
} from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// The backend publish API and the outbox (PROTOCOL.md, Backend publish API): gateways take
// publishes into the outbox stream, workers (a consumer group) deliver them, retry them, claim
// those of dead workers, and dead-letter what never succeeds.

jest.setTimeout(60000);

const KEY = 'test-api-key-0123456789abcdef';
const tag = () => randomUUID().slice(0, 8);

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** One HTTP request on loopback (a fresh connection each time). */
function request(
  port: number,
  opts: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string>; chunked?: boolean } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
    if (opts.body !== undefined && !opts.chunked) headers['content-length'] = String(Buffer.byteLength(opts.body));
    const req = http.request(
      { host: '127.0.0.1', port, method: opts.method ?? 'POST', path: opts.path ?? '/api/v1/publish', headers, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** POST /api/v1/publish with a JSON body (or raw text) and the API key (or another Authorization). */
function publish(port: number, body: unknown, auth: string | null = `Bearer ${KEY}`): Promise<Res> {
  return request(port, {
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: auth === null ? {} : { authorization: auth },
  });
}

/** Scrapes /metrics; `value(name, labels)` sums the samples of `name` matching `labels`. */
async function scrape(port: number): Promise<(name: string, labels?: Record<string, string>) => number> {
  const res = await request(port, { method: 'GET', path: '/metrics' });
  expect(res.status).toBe(200);
  const lines = String(res.body)
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
  return (name, labels = {}) => {
    let sum = 0;
    let seen = false;
    for (const l of lines) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(l);
      if (!m || m[1] !== name) continue;
      const ls = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      if (Object.entries(labels).every(([k, v]) => ls[k] === v)) {
        sum += Number(m[3]);
        seen = true;
      }
    }
    if (!seen) throw new Error(`no sample of ${name} ${JSON.stringify(labels)}`);
    return sum;
  };
}

/** How many entries were ever added to a stream (XINFO STREAM entries-added): deletions do not hide a write. */
async function entriesAdded(r: Redis, stream: string): Promise<number> {
  try {
    const info = (await r.xinfo('STREAM', stream)) as unknown[];
    return Number(info[info.indexOf('entries-added') + 1]);
  } catch (e) {
    if (/no such key/i.test((e as Error).message)) return 0;
    throw e;
  }
}

interface Device {
  s: ClientSocket;
  got: Record<string, any[]>;
  batches: Array<{ messages: any[]; more: boolean }>;
}

/** A socket with listeners for `events` and `queued-messages` in place before it connects; joins `rooms`. */
async function device(
  url: string,
  userId: string,
  opts: { events?: string[]; rooms?: string[]; claims?: Record<string, unknown> } = {},
): Promise<Device> {
  const s = client(url, { token: await token(userId, opts.claims) }, { reconnection: false });
  const got: Record<string, any[]> = {};
  for (const e of opts.events ?? ['news']) got[e] = collect(s, e);
  const batches = collect(s, 'queued-messages');
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  for (const room of opts.rooms ?? []) expect(await s.emitWithAck('join-room', room)).toMatchObject({ ok: true });
  return { s, got, batches };
}

async function replayed(d: Device): Promise<any[]> {
  await until(() => d.batches.length > 0 && d.batches[d.batches.length - 1].more === false, 10000, 'the inbox replay');
  return d.batches.flatMap((b) => b.messages);
}

describe('publish API and outbox (2 gateways, 1 worker, Redis)', () => {
  let redis: TestRedis;
  let r: Redis;
  let prefix: string;
  let stream: string;
  let gws: RunningGateway[];
  let stopGws: () => Promise<void>;
  let worker: Awaited<ReturnType<typeof startWorker>>;
  const gw = (i: number) => gws[i % gws.length];
  const extra: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    redis = await startRedis();
    r = new Redis(redis.url);
    prefix = uniquePrefix();
    stream = `${prefix}:{outbox}`;
    const c = await startGateways(2, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, API_KEYS: `other-key-0123456789,${KEY}` });
    gws = c.gateways;
    stopGws = c.stop;
    worker = await startWorker({
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      POD_NAME: `${prefix}-worker`,
      API_KEYS: KEY,
      WORKER_VISIBILITY_TIMEOUT_MS: '1000',
      WORKER_MAX_ATTEMPTS: '3',
    });
  });
  afterEach(async () => {
    closeClients();
    for (const f of extra.splice(0)) await f();
  });
  afterAll(async () => {
    closeClients();
    await worker?.stop();
    await stopGws?.();
    r?.disconnect();
    await redis?.stop();
  });

  test('a room, several rooms, everyone in a namespace, and a workspace namespace', async () => {
    const a = await device(gw(0).url, `a-${tag()}`, { rooms: ['r1'] });
    const b = await device(gw(1).url, `b-${tag()}`, { rooms: ['r2'] });
    const c = await device(gw(1).url, `c-${tag()}`);
    const claims = { workspaces: ['a', 'b'] };
    const wa = await device(`${gw(0).url}/workspace-a`, `wa-${tag()}`, { rooms: ['r1'], claims });
    const wb = await device(`${gw(1).url}/workspace-b`, `wb-${tag()}`, { rooms: ['r1'], claims });
    const ns = (d: Device) => d.got.news.map((x) => x.n);
    const send = async (port: number, body: object, who: Device[], n: number) => {
      const res = await publish(port, { ...body, event: 'news', data: { n } });
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ id: expect.any(String) });
      expect(res.headers['content-type']).toMatch(/application\/json/);
      await until(() => who.every((d) => ns(d).includes(n)), 5000, `publish ${n}`);
    };
    await send(gw(0).port, { room: 'r1' }, [a], 1);
    await send(gw(1).port, { rooms: ['r1', 'r2', 'r1'] }, [a, b], 2);
    await send(gw(0).port, {}, [a, b, c], 3);
    await send(gw(1).port, { namespace: '/', room: 'r2' }, [b], 4);
    await send(gw(0).port, { namespace: '/workspace-a', room: 'r1' }, [wa], 5);
    await send(gw(1).port, { namespace: '/workspace-a' }, [wa], 6);
    // probes to everyone in each namespace: whatever leaked would have arrived before them
    await send(gw(0).port, { namespace: '/workspace-b' }, [wb], 7);
    await send(gw(1).port, {}, [a, b, c], 8);
    expect(ns(a)).toEqual([1, 2, 3, 8]);
    expect(ns(b)).toEqual([2, 3, 4, 8]);
    expect(ns(c)).toEqual([3, 8]);
    expect(ns(wa)).toEqual([5, 6]);
    expect(ns(wb)).toEqual([7]);
    expect(a.got.news[0]).toEqual({ n: 1 });
  });

  test('a user: live on every socket and into the inbox (per namespace)', async () => {
    const u = `u-${tag()}`;
    const claims = { workspaces: ['a'] };
    const d1 = await device(gw(0).url, u, { events: ['notify'], claims });
    const d2 = await device(gw(1).url, u, { events: ['notify'], claims });
    const other = await device(gw(1).url, `v-${tag()}`, { events: ['notify'] });
    await replayed(d1);
    await replayed(d2);
    const id = `order-${tag()}`;
    const deliveries0 = await metricValue(worker.metrics, 'realtime_outbox_deliveries_total', { target: 'user' });
    expect(await publish(gw(0).port, { userId: u, event: 'notify', data: { x: 1 }, id })).toMatchObject({ status: 202, body: { id } });
    await until(() => d1.got.notify.length === 1 && d2.got.notify.length === 1, 5000, 'live delivery to both sockets');
    expect(d1.got.notify[0]).toEqual({ x: 1 });
    expect(d2.got.notify[0]).toEqual({ x: 1 });
    // the same user in a workspace: a separate inbox
    const ws = await publish(gw(1).port, { namespace: '/workspace-a', userId: u, event: 'notify', data: { x: 2 } });
    expect(ws.status).toBe(202);
    await until(async () => (await r.xlen(`${prefix}:inbox:{/workspace-a|${u}}`)) === 1, 5000, 'the workspace inbox');
    const later = await device(gw(1).url, u, { events: ['notify'], claims });
    expect(await replayed(later)).toEqual([
      { id: expect.stringMatching(/^\d+-\d+$/), event: 'notify', data: { x: 1 }, publishId: id, timestamp: expect.any(Number) },
    ]);
    const wsLater = await device(`${gw(1).url}/workspace-a`, u, { events: ['notify'], claims });
    expect(await replayed(wsLater)).toEqual([
      { id: expect.any(String), event: 'notify', data: { x: 2 }, publishId: ws.body.id, timestamp: expect.any(Number) },
    ]);
    expect(await metricValue(worker.metrics, 'realtime_outbox_deliveries_total', { target: 'user' })).toBe(deliveries0 + 2);
    // nobody else got it live; the / sockets did not get the workspace one
    expect(other.got.notify).toHaveLength(0);
    expect(d1.got.notify).toHaveLength(1);
  });

  test('a retried id is accepted once: both answers 202 with the same id, one delivery, one inbox entry', async () => {
    const rx = await device(gw(1).url, `rx-${tag()}`, { rooms: ['idem'] });
    const u = `iu-${tag()}`;
    const before = await entriesAdded(r, stream);
    const id1 = `idem-${tag()}`;
    const first = await publish(gw(0).port, { room: 'idem', event: 'news', data: { id: id1 }, id: id1 });
    expect(first).toMatchObject({ status: 202, body: { id: id1 } });
    await until(() => rx.got.news.length === 1, 5000, 'the first delivery');
    // the retry (after delivery, on the other pod) and a concurrent pair
    expect(await publish(gw(1).port, { room: 'idem', event: 'news', data: { id: id1 }, id: id1 })).toMatchObject({
      status: 202,
      body: { id: id1 },
    });
    const id2 = `idem-${tag()}`;
    const pair = await Promise.all([0, 1].map((i) => publish(gw(i).port, { room: 'idem', event: 'news', data: { id: id2 }, id: id2 })));
    for (const p of pair) expect(p).toMatchObject({ status: 202, body: { id: id2 } });
    const id3 = `idem-${tag()}`;
    for (let i = 0; i < 2; i++)
      expect(await publish(gw(i).port, { userId: u, event: 'notify', data: 1, id: id3 })).toMatchObject({ status: 202, body: { id: id3 } });
    // without an id every publish is new
    const fresh = await Promise.all([0, 1].map(() => publish(gw(0).port, { room: 'idem', event: 'news', data: { id: 'anon' } })));
    expect(fresh[0].body.id).not.toBe(fresh[1].body.id);
    const probe = await publish(gw(0).port, { room: 'idem', event: 'news', data: { id: 'probe' } });
    expect(probe.status).toBe(202);
    await until(() => rx.got.news.some((m) => m.id === 'probe'), 5000, 'the probe');
    const ids = rx.got.news.map((m) => m.id).sort();
    expect(ids).toEqual([id1, id2, 'anon', 'anon', 'probe'].sort());
    expect((await entriesAdded(r, stream)) - before).toBe(6); // id1, id2, id3, two anonymous, the probe
    const d = await device(gw(0).url, u, { events: ['notify'] });
    expect((await replayed(d)).map((m) => m.publishId)).toEqual([id3]);
  });

  test('400 for bad input, and nothing reaches the outbox', async () => {
    const before = await entriesAdded(r, stream);
    const len = await r.xlen(stream);
    const ok = { event: 'news', data: 1 };
    const cases: Array<[string, unknown]> = [
      ['bad JSON', '{"event":'],
      ['empty body', ''],
      ['two targets', { ...ok, room: 'r1', userId: 'bob' }],
      ['room and rooms', { ...ok, room: 'r1', rooms: ['r2'] }],
      ['all three targets', { ...ok, room: 'r1', rooms: ['r2'], userId: 'bob' }],
      ['unknown field', { ...ok, extra: true }],
      ['unknown field (to)', { ...ok, to: 'r1' }],
      ['event with a space', { event: 'has space', data: 1 }],
      ['reserved event', { event: 'connect', data: 1 }],
      ['reserved event (disconnect)', { event: 'disconnect', data: 1 }],
      ['event too long', { event: 'e'.repeat(65), data: 1 }],
      ['event not a string', { event: 5, data: 1 }],
      ['no event', { data: 1 }],
      ['no data', { event: 'news' }],
      ['reserved room user:', { ...ok, room: 'user:bob' }],
      ['reserved room presence:', { ...ok, room: 'presence:bob' }],
      ['reserved room _', { ...ok, room: '_internal' }],
      ['reserved room among rooms', { ...ok, rooms: ['fine', 'user:bob'] }],
      ['bad room id', { ...ok, room: 'has space' }],
      ['empty rooms', { ...ok, rooms: [] }],
      ['rooms not an array', { ...ok, rooms: 'r1' }],
      ['bad namespace', { ...ok, namespace: 'nope' }],
      ['admin namespace', { ...ok, namespace: '/admin' }],
      ['unknown namespace', { ...ok, namespace: '/other' }],
      ['workspace without id', { ...ok, namespace: '/workspace-' }],
      ['bad userId', { ...ok, userId: 'a b' }],
      ['bad id', { ...ok, id: 'has space' }],
      ['id not a string', { ...ok, id: 42 }],
      ['array body', '[{"event":"news","data":1}]'],
      ['string body', '"news"'],
      ['null body', 'null'],
      ['number body', '42'],
    ];
    for (const [what, body] of cases) {
      const res = await publish(gw(0).port, body);
      expect({ what, status: res.status, body: res.body }).toEqual({
        what,
        status: 400,
        body: { error: { code: 'bad_request', message: expect.any(String) } },
      });
    }
    // the worker's API validates the same way
    expect((await publish(worker.port, { ...ok, room: 'user:bob' })).status).toBe(400);
    expect(await entriesAdded(r, stream)).toBe(before);
    expect(await r.xlen(stream)).toBe(len);
    const counted = await metricValue(gw(0).metrics, 'realtime_api_publish_requests_total', { status: '400' });
    expect(counted).toBeGreaterThanOrEqual(cases.length);
  });

  test('401 without a valid key, and when API_KEYS is unset', async () => {
    const before = await entriesAdded(r, stream);
    const body = { room: 'r1', event: 'news', data: 1 };
    for (const auth of [
      null,
      'Bearer wrong-key-0123456789abcdef',
      `Basic ${KEY}`,
      'Bearer',
      `Bearer ${KEY}x`,
      `Bearer ${KEY.slice(1)}`,
      KEY,
    ]) {
      const res = await publish(gw(0).port, body, auth);
      expect({ auth, status: res.status, body: res.body }).toEqual({
        auth,
        status: 401,
        body: { error: { code: 'unauthorized', message: expect.any(String) } },
      });
    }
    expect((await publish(worker.port, body, null)).status).toBe(401);
    // every configured key works, the scheme is case-insensitive
    expect((await publish(gw(1).port, body, 'Bearer other-key-0123456789')).status).toBe(202);
    expect((await publish(gw(1).port, body, `bearer ${KEY}`)).status).toBe(202);
    // a gateway without API_KEYS: the publish API is off
    const off = await startGateways(1, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, API_KEYS: '' });
    extra.push(off.stop);
    const res = await publish(off.gateways[0].port, body);
    expect(res).toMatchObject({ status: 401, body: { error: { code: 'unauthorized', message: expect.stringMatching(/API_KEYS/) } } });
    expect(await entriesAdded(r, stream)).toBe(before + 2);
  });

  test('413 for a body over the limit or data over MAX_MESSAGE_BYTES; 405 for other methods', async () => {
    const before = await entriesAdded(r, stream);
    const big = JSON.stringify({ room: 'r1', event: 'news', data: 'x'.repeat(30000) });
    const tooLarge = { status: 413, body: { error: { code: 'too_large', message: expect.any(String) } } };
    expect(await publish(gw(0).port, big)).toMatchObject(tooLarge);
    // streamed without a content-length: cut off once past the limit
    const chunked = await request(gw(1).port, { body: big, headers: { authorization: `Bearer ${KEY}` }, chunked: true });
    expect(chunked).toMatchObject(tooLarge);
    // a body under the limit whose data exceeds MAX_MESSAGE_BYTES (16384)
    const res = await publish(gw(0).port, { room: 'r1', event: 'news', data: { blob: 'y'.repeat(17000) } });
    expect(res).toMatchObject(tooLarge);
    expect(res.body.error.message).toMatch(/16384/);
    expect((await publish(worker.port, big)).status).toBe(413);
    // just under MAX_MESSAGE_BYTES is fine
    expect((await publish(gw(0).port, { room: 'r1', event: 'news', data: 'z'.repeat(16000) })).status).toBe(202);
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const m = await request(gw(0).port, { method, headers: { authorization: `Bearer ${KEY}` } });
      expect({ method, status: m.status, allow: m.headers.allow, body: m.body }).toEqual({
        method,
        status: 405,
        allow: 'POST',
        body: { error: { code: 'bad_request', message: expect.any(String) } },
      });
    }
    expect((await request(worker.port, { method: 'GET' })).status).toBe(405);
    expect(await entriesAdded(r, stream)).toBe(before + 1);
  });

  test("the publish API also works on the worker's PORT", async () => {
    const rx = await device(gw(1).url, `wp-${tag()}`, { rooms: ['via-worker'] });
    const res = await publish(worker.port, { room: 'via-worker', event: 'news', data: { from: 'worker port' } });
    expect(res).toMatchObject({ status: 202, body: { id: expect.any(String) } });
    await until(() => rx.got.news.length === 1, 5000, 'delivery');
    expect(rx.got.news).toEqual([{ from: 'worker port' }]);
  });

  test('a backend XADDing the documented entry format directly is delivered', async () => {
    const u = `xu-${tag()}`;
    const rx = await device(gw(0).url, `xr-${tag()}`, { rooms: ['x1'] });
    const ry = await device(gw(1).url, `xs-${tag()}`, { rooms: ['x2'] });
    const claims = { workspaces: ['q'] };
    const wq = await device(`${gw(1).url}/workspace-q`, `xw-${tag()}`, { rooms: ['x1'], claims });
    await r.xadd(
      stream,
      '*',
      'id',
      `x-${tag()}`,
      'namespace',
      '/',
      'room',
      'x1',
      'event',
      'news',
      'data',
      JSON.stringify({ via: 'xadd' }),
      'ts',
      String(Date.now()),
    );
    await until(() => rx.got.news.length === 1, 5000, 'room delivery');
    expect(rx.got.news[0]).toEqual({ via: 'xadd' });
    // rooms as a JSON array, the namespace defaulted, no id (the entry id stands in)
    await r.xadd(stream, '*', 'rooms', JSON.stringify(['x1', 'x2']), 'event', 'news', 'data', '{"k":2}');
    await until(() => rx.got.news.length === 2 && ry.got.news.length === 1, 5000, 'rooms delivery');
    // a workspace namespace
    await r.xadd(stream, '*', 'namespace', '/workspace-q', 'room', 'x1', 'event', 'news', 'data', '"ws"');
    await until(() => wq.got.news.length === 1, 5000, 'workspace delivery');
    expect(wq.got.news).toEqual(['ws']);
    // a user: into the inbox, with the entry id as the publish id
    const entryId = await r.xadd(stream, '*', 'userId', u, 'event', 'notify', 'data', '{"k":3}');
    await until(async () => (await r.xlen(`${prefix}:inbox:{/|${u}}`)) === 1, 5000, 'the inbox append');
    const d = await device(gw(1).url, u, { events: ['notify'] });
    expect(await replayed(d)).toEqual([
      {
        id: expect.any(String),
        event: 'notify',
        data: { k: 3 },
        publishId: `outbox-${entryId}`,
        timestamp: Number(entryId!.split('-')[0]),
      },
    ]);
    expect(rx.got.news).toHaveLength(2);
    // delivered entries leave the stream
    await until(async () => (await r.xlen(stream)) === 0, 5000, 'the outbox to drain');
  });

  test('an entry that always fails is dead-lettered after WORKER_MAX_ATTEMPTS attempts, with its error', async () => {
    const dead = `${stream}:dead`;
    await until(async () => (await r.xlen(stream)) === 0, 5000, 'an empty outbox');
    const dl0 = await metricValue(worker.metrics, 'realtime_outbox_dead_letters_total');
    const fail0 = await metricValue(worker.metrics, 'realtime_outbox_delivery_failures_total');
    const badJson = (await r.xadd(stream, '*', 'id', `bad-json-${tag()}`, 'room', 'r1', 'event', 'news', 'data', '{not json'))!;
    const badNs = (await r.xadd(stream, '*', 'id', `bad-ns-${tag()}`, 'namespace', 'nope', 'event', 'news', 'data', '1'))!;
    // while they are retried, the queue gauges on the worker's METRICS_PORT show them pending
    await until(
      async () => {
        const m = await scrape(worker.metricsPort);
        return (
          m('realtime_outbox_pending') === 2 && m('realtime_outbox_length') === 2 && m('realtime_outbox_oldest_pending_age_seconds') > 0
        );
      },
      10000,
      'the pending gauges',
    );
    await until(async () => (await r.xlen(dead)) >= 2, 15000, 'two dead letters');
    const rows = new Map(
      (await r.xrange(dead, '-', '+')).map(([, f]) => [
        f[f.indexOf('outboxId') + 1],
        Object.fromEntries(f.flatMap((v, i) => (i % 2 ? [] : [[v, f[i + 1]]]))),
      ]),
    );
    expect(rows.get(badJson)).toMatchObject({
      data: '{not json',
      event: 'news',
      room: 'r1',
      outboxId: badJson,
      attempts: '3',
      error: 'field data is not valid JSON',
    });
    expect(rows.get(badNs)).toMatchObject({
      namespace: 'nope',
      outboxId: badNs,
      attempts: '3',
      error: expect.stringMatching(/namespace: "nope"/),
    });
    // gone from the outbox (not pending, not in the stream), counted
    expect(await r.xrange(stream, badJson, badJson)).toEqual([]);
    expect(await r.xrange(stream, badNs, badNs)).toEqual([]);
    expect(((await r.xpending(stream, 'workers')) as unknown[])[0]).toBe(0);
    expect(await metricValue(worker.metrics, 'realtime_outbox_dead_letters_total')).toBe(dl0 + 2);
    expect(await metricValue(worker.metrics, 'realtime_outbox_delivery_failures_total')).toBe(fail0 + 6);
    await until(
      async () => {
        const m = await scrape(worker.metricsPort);
        return (
          m('realtime_outbox_dead_letters_total') === dl0 + 2 &&
          m('realtime_outbox_dead_letter_length') === 2 &&
          m('realtime_outbox_pending') === 0 &&
          m('realtime_outbox_length') === 0
        );
      },
      5000,
      'the gauges after dead-lettering',
    );
  });

  test('queue metrics at rest: length, lag, pending, oldest age at 0; deliveries by target', async () => {
    await until(async () => (await r.xlen(stream)) === 0, 5000, 'an empty outbox');
    await until(
      async () => {
        const m = await scrape(worker.metricsPort);
        return (
          m('realtime_outbox_length') === 0 &&
          m('realtime_outbox_lag') === 0 &&
          m('realtime_outbox_pending') === 0 &&
          m('realtime_outbox_oldest_pending_age_seconds') === 0
        );
      },
      5000,
      'the gauges at rest',
    );
    const m = await scrape(worker.metricsPort);
    for (const target of ['all', 'rooms', 'user']) {
      expect(m('realtime_outbox_deliveries_total', { target })).toBe(
        await metricValue(worker.metrics, 'realtime_outbox_deliveries_total', { target }),
      );
      expect(m('realtime_outbox_deliveries_total', { target })).toBeGreaterThan(0);
    }
  });

  // Last: it takes Redis away from everything above.
  test('503 while Redis is down, on the gateway and the worker; publishing resumes when it is back', async () => {
    const rx = await device(gw(0).url, `down-${tag()}`, { rooms: ['after'] });
    await redis.stop();
    for (const port of [gw(0).port, gw(1).port, worker.port]) {
      const res = await publish(port, { room: 'after', event: 'news', data: 'lost?' });
      expect(res).toEqual(expect.objectContaining({ status: 503, body: { error: { code: 'unavailable', message: expect.any(String) } } }));
    }
    await redis.restart();
    await until(
      async () => (await request(gw(1).metricsPort, { method: 'GET', path: '/readyz' })).status === 200,
      15000,
      'gateway readiness',
    );
    const res = await publish(gw(1).port, { room: 'after', event: 'news', data: 'back' });
    expect(res.status).toBe(202);
    await until(() => rx.got.news.includes('back'), 15000, 'delivery after the outage');
    expect(rx.got.news).toEqual(['back']);
  });
});

describe('a worker killed with entries pending (real worker processes)', () => {
  let redis: TestRedis;
  let r: Redis;
  let prefix: string;
  let stream: string;
  let gws: RunningGateway[];
  let stopGws: () => Promise<void>;
  const procs: GatewayProcess[] = [];
  const spawnWorker = async (name: string) => {
    const w = await spawnService('worker', {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      POD_NAME: `${prefix}-${name}`,
      API_KEYS: KEY,
      WORKER_VISIBILITY_TIMEOUT_MS: '1000',
    });
    procs.push(w);
    return w;
  };
  /** True while some worker's outbox reader is parked in XREADGROUP ... BLOCK on the Redis side. */
  const readerBlocked = async () =>
    ((await r.client('LIST')) as string)
      .split('\n')
      .some((l) => /name=rtg-outbox-reader /.test(l) && / flags=\S*b/.test(l) && / cmd=xreadgroup/.test(l));

  beforeAll(async () => {
    redis = await startRedis();
    r = new Redis(redis.url);
    prefix = uniquePrefix();
    stream = `${prefix}:{outbox}`;
    const c = await startGateways(2, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, API_KEYS: KEY });
    gws = c.gateways;
    stopGws = c.stop;
  });
  afterAll(async () => {
    closeClients();
    for (const p of procs) {
      p.proc.kill('SIGCONT');
      await p.kill('SIGKILL');
    }
    await stopGws?.();
    r?.disconnect();
    await redis?.stop();
  });

  let w2: GatewayProcess;

  test('another worker claims them after the visibility timeout; each is delivered at least once', async () => {
    const rx = [
      await device(gws[0].url, `k0-${tag()}`, { events: ['job'], rooms: ['k'] }),
      await device(gws[1].url, `k1-${tag()}`, { events: ['job'], rooms: ['k'] }),
    ];
    const w1 = await spawnWorker('w1');
    // w1 works
    expect((await publish(gws[0].port, { room: 'k', event: 'job', data: { n: -1 } })).status).toBe(202);
    await until(() => rx.every((d) => d.got.job.length === 1), 10000, 'the first job');

    // Freeze w1 while its reader is parked in XREADGROUP: Redis still hands it the next entries
    // (they become pending for w1) but w1 never processes them.
    for (let attempt = 0; ; attempt++) {
      await until(readerBlocked, 10000, "w1's reader blocked in XREADGROUP");
      w1.proc.kill('SIGSTOP');
      if (await readerBlocked()) break;
      w1.proc.kill('SIGCONT'); // it was between two reads: try again
      if (attempt >= 10) throw new Error('could not freeze w1 inside XREADGROUP');
    }
    // A backend appends a batch at once (MULTI): the parked XREADGROUP is served with all of it.
    const multi = r.multi();
    for (let n = 0; n < 20; n++)
      multi.xadd(stream, '*', 'id', `job-${n}`, 'room', 'k', 'event', 'job', 'data', JSON.stringify({ n }), 'ts', String(Date.now()));
    const t0 = Date.now();
    await multi.exec();
    // Publishes through the API meanwhile stay unread: w1 is frozen and alone.
    for (let n = 20; n < 30; n++)
      expect((await publish(gws[n % 2].port, { room: 'k', event: 'job', data: { n }, id: `job-${n}` })).status).toBe(202);
    const pending = (await r.xpending(stream, 'workers', '-', '+', 100, `${prefix}-w1`)) as Array<[string, string, number, number]>;
    expect(pending).toHaveLength(20);
    const groups = (await r.xinfo('GROUPS', stream)) as unknown[][];
    const g = groups[0];
    expect(Number(g[g.indexOf('lag') + 1])).toBe(10);
    expect(Number(g[g.indexOf('pending') + 1])).toBe(20);
    await w1.kill('SIGKILL');
    expect(rx.every((d) => d.got.job.length === 1)).toBe(true);

    w2 = await spawnWorker('w2');
    const arrived = new Map<number, number>();
    for (const d of rx) d.s.on('job', (m: { n: number }) => arrived.set(m.n, Math.min(arrived.get(m.n) ?? Infinity, Date.now())));
    const all = Array.from({ length: 30 }, (_, n) => n);
    await until(() => rx.every((d) => all.every((n) => d.got.job.some((m) => m.n === n))), 20000, 'every job on both receivers').catch(
      async (e: Error) => {
        const got = rx.map((d) => d.got.job.map((m) => m.n).join(','));
        throw new Error(
          `${e.message}; received ${JSON.stringify(got)}; XPENDING ${JSON.stringify(await r.xpending(stream, 'workers'))}; w2 exit ${w2.proc.exitCode}: ${w2.output().slice(-2000)}`,
        );
      },
    );
    // the 20 pending ones only after the visibility timeout
    for (let n = 0; n < 20; n++) expect(arrived.get(n)!).toBeGreaterThanOrEqual(t0 + 1000);
    for (const d of rx) {
      const counts = new Map<number, number>();
      for (const m of d.got.job) counts.set(m.n, (counts.get(m.n) ?? 0) + 1);
      for (const n of all) expect(counts.get(n) ?? 0).toBeGreaterThanOrEqual(1);
    }
    await until(async () => (await r.xlen(stream)) === 0, 5000, 'the outbox to drain');
    expect(((await r.xpending(stream, 'workers')) as unknown[])[0]).toBe(0);
    expect(await r.xlen(`${stream}:dead`)).toBe(0);
  });

  test("queue gauges on the worker's METRICS_PORT while it works through a backlog", async () => {
    const base = (await scrape(w2.metricsPort))('realtime_outbox_deliveries_total', { target: 'rooms' });
    // A backlog builds while w2 is frozen long enough for its gauge timer (2 s) to come due.
    w2.proc.kill('SIGSTOP');
    const pipe = r.pipeline();
    for (let n = 0; n < 500; n++) pipe.xadd(stream, '*', 'room', 'nobody-here', 'event', 'bulk', 'data', String(n));
    await pipe.exec();
    await new Promise((res) => setTimeout(res, 2200)); // time passing is the point: no event to await
    w2.proc.kill('SIGCONT');
    // The first gauge pass after the pause runs before w2 can have read more than one batch.
    let seen: Record<string, number> = {};
    await until(
      async () => {
        const m = await scrape(w2.metricsPort);
        seen = {
          length: m('realtime_outbox_length'),
          lag: m('realtime_outbox_lag'),
          pending: m('realtime_outbox_pending'),
          age: m('realtime_outbox_oldest_pending_age_seconds'),
        };
        return seen.lag > 0;
      },
      5000,
      'a backlog in the gauges',
    );
    expect(seen.length).toBeGreaterThanOrEqual(seen.lag);
    expect(seen.length).toBeLessThanOrEqual(500);
    expect(seen.lag).toBeLessThanOrEqual(500);
    // and back to zero once it is drained
    await until(
      async () => {
        const m = await scrape(w2.metricsPort);
        return (
          m('realtime_outbox_length') === 0 &&
          m('realtime_outbox_lag') === 0 &&
          m('realtime_outbox_pending') === 0 &&
          m('realtime_outbox_oldest_pending_age_seconds') === 0
        );
      },
      10000,
      'the gauges back at zero',
    );
    expect((await scrape(w2.metricsPort))('realtime_outbox_deliveries_total', { target: 'rooms' })).toBe(base + 500);
  });
});
