import { closeClients, collect, connect, startGateways, token, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

const GRACE = 400;

describe.each([
  ['memory', 1],
  ['redis', 3],
])('presence (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  let urls: string[];
  let stop: () => Promise<void>;
  const url = (i: number) => urls[i % urls.length];

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const c = await startGateways(n, { REDIS_URL: redis?.url, PRESENCE_GRACE_MS: String(GRACE) });
    urls = c.gateways.map((g) => g.url);
    stop = c.stop;
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    await stop();
    await redis?.stop();
  });

  const user = async (id: string, i: number) => connect(url(i), { token: await token(id) });

  test('two sockets on two pods: one closing announces nothing, both closing announce one offline after the grace period', async () => {
    const watcher = await user('watcher', 0);
    const sub = await watcher.emitWithAck('presence:subscribe', ['pat']);
    expect(sub).toEqual({ ok: true, users: [{ userId: 'pat', status: 'offline', lastSeen: null }] });
    const events = collect(watcher, 'presence');
    const s1 = await user('pat', 1);
    await until(() => events.length === 1, 5000, 'online');
    expect(events[0]).toEqual({ userId: 'pat', status: 'online', lastSeen: expect.any(Number) });
    const s2 = await user('pat', 2);
    s1.disconnect();
    await new Promise((r) => setTimeout(r, GRACE * 3)); // past the grace period: still online, nothing announced
    expect(events).toHaveLength(1);
    expect((await watcher.emitWithAck('get-presence', ['pat'])).users[0].status).toBe('online');
    const t0 = Date.now();
    s2.disconnect();
    await until(() => events.length === 2, 5000, 'offline');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(GRACE - 50);
    expect(events[1]).toEqual({ userId: 'pat', status: 'offline', lastSeen: expect.any(Number) });
    expect((await watcher.emitWithAck('get-presence', ['pat'])).users[0]).toEqual({ userId: 'pat', status: 'offline', lastSeen: events[1].lastSeen });
  });

  test('a reconnect within the grace period (to another pod) announces nothing', async () => {
    const watcher = await user('w2', 0);
    await watcher.emitWithAck('presence:subscribe', ['quinn']);
    const events = collect(watcher, 'presence');
    const s1 = await user('quinn', 1);
    await until(() => events.length === 1, 5000, 'online');
    s1.disconnect();
    await new Promise((r) => setTimeout(r, GRACE / 4));
    const s2 = await user('quinn', 2);
    await new Promise((r) => setTimeout(r, GRACE * 3));
    expect(events).toHaveLength(1);
    s2.disconnect();
    await until(() => events.length === 2, 5000, 'offline');
    expect(events.map((e) => e.status)).toEqual(['online', 'offline']);
  });

  test('presence events go to subscribers only; unsubscribe stops them', async () => {
    const sub = await user('sub', 0);
    const other = await user('other', 1);
    await sub.emitWithAck('presence:subscribe', ['rita']);
    const got = collect(sub, 'presence');
    const notSub = collect(other, 'presence');
    const r = await user('rita', 2);
    await until(() => got.length === 1, 5000, 'online');
    expect(await sub.emitWithAck('presence:unsubscribe', ['rita'])).toEqual({ ok: true });
    r.disconnect();
    await new Promise((res) => setTimeout(res, GRACE * 3));
    expect(got).toHaveLength(1);
    expect(notSub).toHaveLength(0);
  });

  test('50 rounds of concurrent connects and disconnects of one user: final state right, transitions announced match', async () => {
    const watcher = await user('w3', 0);
    await watcher.emitWithAck('presence:subscribe', ['sam']);
    const events = collect(watcher, 'presence');
    const t = await token('sam');
    for (let round = 0; round < 50; round++) {
      const socks = await Promise.all([0, 1, 2].map((i) => connect(url(i), { token: t })));
      await Promise.all(socks.map((s) => new Promise<void>((res) => { s.disconnect(); res(); })));
    }
    const last = await Promise.all([0, 1].map((i) => connect(url(i), { token: t })));
    await new Promise((r) => setTimeout(r, GRACE * 3));
    expect((await watcher.emitWithAck('get-presence', ['sam'])).users[0].status).toBe('online');
    last.forEach((s) => s.disconnect());
    await until(async () => (await watcher.emitWithAck('get-presence', ['sam'])).users[0].status === 'offline', 8000, 'offline');
    await new Promise((r) => setTimeout(r, GRACE));
    // transitions alternate, start online, end offline: announced = real transitions
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events.length % 2).toBe(0);
    events.forEach((e, i) => expect(e.status).toBe(i % 2 === 0 ? 'online' : 'offline'));
  });

  test('bulk get-presence of 1,000 ids; invalid ids and oversized lists answer bad_request', async () => {
    const s = await user('bulk', 0);
    const ids = Array.from({ length: 1000 }, (_, i) => `u${i}`);
    const on = await user('u7', 1);
    await until(async () => (await s.emitWithAck('get-presence', ['u7'])).users[0].status === 'online', 5000, 'u7 online');
    const res = await s.emitWithAck('get-presence', ids);
    expect(res.ok).toBe(true);
    expect(res.users).toHaveLength(1000);
    expect(res.users[7]).toEqual({ userId: 'u7', status: 'online', lastSeen: expect.any(Number) });
    expect(res.users.filter((u: any) => u.status === 'online')).toHaveLength(1);
    expect((await s.emitWithAck('get-presence', [...ids, 'one-more'])).error.code).toBe('bad_request');
    expect((await s.emitWithAck('get-presence', ['ok', 'bad id'])).error.code).toBe('bad_request');
    expect((await s.emitWithAck('get-presence', 'nope')).error.code).toBe('bad_request');
    expect((await s.emitWithAck('presence:subscribe', [42])).error.code).toBe('bad_request');
    on.disconnect();
  });
});
