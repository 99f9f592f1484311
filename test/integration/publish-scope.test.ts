import { createHash, randomUUID } from 'crypto';
import Redis from 'ioredis';
import type { Socket as ClientSocket } from 'socket.io-client';
import { client, closeClients, collect, RunningGateway, startGateways, startWorker, token, until } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// Publish ids are scoped per API key (PROTOCOL.md, Backend publish API): the same key and id are
// accepted once, as before; two backends with different keys that happen to use the same id are
// both delivered (before: the second was silently suppressed), to rooms and to user inboxes, on the
// Redis outbox and on the single-node (in-memory) one. Entries XADDed without a key have their own
// scope. Clients always see the id the backend sent.

jest.setTimeout(60000);

const KEY_A = 'backend-a-key-0123456789';
const KEY_B = 'backend-b-key-0123456789';
const tag = () => randomUUID().slice(0, 8);
const scopeOf = (key: string) => createHash('sha256').update(key).digest().subarray(0, 6).toString('hex');

async function publish(port: number, key: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

interface Device {
  s: ClientSocket;
  news: any[];
  batches: Array<{ messages: any[]; more: boolean }>;
}

async function device(url: string, userId: string, room?: string): Promise<Device> {
  const s = client(url, { token: await token(userId) }, { reconnection: false });
  const news = collect(s, 'news');
  const batches = collect(s, 'queued-messages');
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  if (room) expect(await s.emitWithAck('join-room', room)).toMatchObject({ ok: true });
  return { s, news, batches };
}

async function replayed(d: Device): Promise<any[]> {
  await until(() => d.batches.length > 0 && d.batches[d.batches.length - 1].more === false, 10000, 'the inbox replay');
  return d.batches.flatMap((b) => b.messages);
}

describe.each(['redis', 'memory'] as const)('publish ids are scoped per API key (%s outbox)', (engine) => {
  let redis: TestRedis | undefined;
  let r: Redis | undefined;
  let gw: RunningGateway;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    if (engine === 'redis') {
      redis = await startRedis();
      r = new Redis(redis.url);
    }
    const c = await startGateways(1, { REDIS_URL: redis?.url, API_KEYS: `${KEY_A},${KEY_B}` });
    stops.push(c.stop);
    gw = c.gateways[0];
    if (redis) {
      const w = await startWorker({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: gw.cfg.keyPrefix, POD_NAME: `${gw.cfg.keyPrefix}-worker` });
      stops.push(w.stop);
    }
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    for (const s of stops.reverse()) await s();
    r?.disconnect();
    await redis?.stop();
  });

  test('a room: the same id from two keys is delivered twice; the same key and id once', async () => {
    const room = `scoped-${tag()}`;
    const rx = await device(gw.url, `rx-${tag()}`, room);
    const id = `order-${tag()}`;
    const answers = [
      await publish(gw.port, KEY_A, { room, event: 'news', data: { from: 'a' }, id }),
      await publish(gw.port, KEY_B, { room, event: 'news', data: { from: 'b' }, id }),
      await publish(gw.port, KEY_A, { room, event: 'news', data: { from: 'a again' }, id }), // a retry of A: accepted once
    ];
    for (const a of answers) expect(a).toEqual({ status: 202, body: { id } });
    const probe = await publish(gw.port, KEY_A, { room, event: 'news', data: { from: 'probe' } });
    expect(probe.status).toBe(202);
    await until(() => rx.news.some((m) => m.from === 'probe'), 10000, 'the probe');
    expect(rx.news.map((m) => m.from).sort()).toEqual(['a', 'b', 'probe']);
    if (r) {
      // one idempotency key per (scope, id); the key itself never appears
      const keys = await r.keys(`${gw.cfg.keyPrefix}:{outbox}:idem:*${id}`);
      expect(keys.sort()).toEqual(
        [`${gw.cfg.keyPrefix}:{outbox}:idem:${scopeOf(KEY_A)}:${id}`, `${gw.cfg.keyPrefix}:{outbox}:idem:${scopeOf(KEY_B)}:${id}`].sort(),
      );
    }
  });

  test('a user: the same id from two keys gives two inbox entries and two live deliveries, each with the id as sent', async () => {
    const u = `scoped-user-${tag()}`;
    const live = await device(gw.url, u);
    await replayed(live);
    const id = `notify-${tag()}`;
    for (const [key, from] of [
      [KEY_A, 'a'],
      [KEY_B, 'b'],
      [KEY_B, 'b again'],
    ])
      expect(await publish(gw.port, key, { userId: u, event: 'news', data: { from }, id })).toEqual({ status: 202, body: { id } });
    await until(() => live.news.length >= 2, 10000, 'the live deliveries');
    live.s.disconnect();
    const later = await device(gw.url, u);
    const inbox = await replayed(later);
    expect(inbox.map((m) => [m.publishId, m.data.from])).toEqual([
      [id, 'a'],
      [id, 'b'],
    ]);
    expect(live.news.map((m) => m.from)).toEqual(['a', 'b']);
  });

  // only the Redis outbox has a stream backends can XADD to
  if (engine === 'redis')
    test('an entry XADDed without a key has its own scope ("direct"): it does not suppress, nor is suppressed by, an API publish', async () => {
      const u = `direct-user-${tag()}`;
      const id = `shared-${tag()}`;
      const stream = `${gw.cfg.keyPrefix}:{outbox}`;
      await r!.xadd(stream, '*', 'userId', u, 'event', 'news', 'data', '{"from":"xadd"}', 'id', id);
      await until(async () => (await r!.xlen(`${gw.cfg.keyPrefix}:inbox:{/|${u}}`)) === 1, 10000, 'the XADD entry in the inbox');
      expect(await publish(gw.port, KEY_A, { userId: u, event: 'news', data: { from: 'api' }, id })).toEqual({ status: 202, body: { id } });
      await r!.xadd(stream, '*', 'userId', u, 'event', 'news', 'data', '{"from":"xadd again"}', 'id', id); // a retry of the XADD: once
      await until(async () => (await r!.xlen(stream)) === 0, 10000, 'the outbox to drain');
      const d = await device(gw.url, u);
      expect((await replayed(d)).map((m) => [m.publishId, m.data.from])).toEqual([
        [id, 'xadd'],
        [id, 'api'],
      ]);
      expect(await r!.exists(`${gw.cfg.keyPrefix}:inbox:{/|${u}}:pub:direct:${id}`)).toBe(1);
      expect(await r!.exists(`${gw.cfg.keyPrefix}:inbox:{/|${u}}:pub:${scopeOf(KEY_A)}:${id}`)).toBe(1);
    });
});
