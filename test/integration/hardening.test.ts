import Redis from 'ioredis';
import { io as ioc } from 'socket.io-client';
import {
  client,
  closeClients,
  connect,
  metricValue,
  RunningGateway,
  seenOnce,
  startGateways,
  token,
  until,
  waitFor,
} from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// Nothing a client sends can make a pod or Redis pay without bound (issue #12, ARCHITECTURE.md
// rule 10): no namespace before the token is verified, caps per socket (limit_exceeded), a byte
// budget per socket (rate_limited), inboxes bounded in bytes, globs that cannot freeze a pod, and
// a token that stops working at its `exp`. Both engines.

jest.setTimeout(60000);

const code = (a: { ok: boolean; error?: { code: string } }) => (a.ok ? 'ok' : a.error?.code);

describe.each(['memory', 'redis'])('hardening (%s engine)', (engine) => {
  let redis: TestRedis | undefined;
  let r: Redis | undefined;
  let gws: RunningGateway[];
  let stop: () => Promise<void>;
  const env = {
    MAX_ROOMS_PER_SOCKET: '5',
    MAX_PRESENCE_SUBSCRIPTIONS: '10',
    MAX_ROOM_IDS: '3',
    SOCKET_WRITE_BYTES_PER_SECOND: '20000',
    SOCKET_WRITE_BURST_BYTES: '40000',
    RATE_LIMIT_EVENTS_PER_SECOND: '0',
    INBOX_MAX_BYTES: '4096',
  };

  beforeAll(async () => {
    if (engine === 'redis') {
      redis = await startRedis();
      r = new Redis(redis.url);
    }
    const c = await startGateways(1, { REDIS_URL: redis?.url, ...env });
    gws = c.gateways;
    stop = c.stop;
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    await stop?.();
    r?.disconnect();
    await redis?.stop();
  });
  const g = () => gws[0];
  const limit = (l: string) => metricValue(g().metrics, 'realtime_gateway_limit_exceeded_total', { limit: l });

  test('a CONNECT to workspace namespaces without a valid token allocates nothing, and says why', async () => {
    const namespaces = () =>
      [...(g().gateway.io as unknown as { _nsps: Map<string, unknown> })._nsps.keys()].filter((n) => n.startsWith('/workspace-'));
    const before = namespaces().length;
    // 3,000 CONNECTs over one connection (the attack): no token at all
    const s = ioc(g().url, { transports: ['websocket'], forceNew: true, autoConnect: false });
    const errors: Array<{ message: string; data?: { code: string } }> = [];
    await new Promise<void>((resolve) => {
      const m = s.io;
      m.open(() => resolve());
    });
    const subs = Array.from({ length: 3000 }, (_, i) => s.io.socket(`/workspace-x${i}`, { auth: {} }));
    for (const sub of subs)
      sub.on('connect_error', (e: Error & { data?: { code: string } }) => errors.push({ message: e.message, data: e.data }));
    for (const sub of subs) sub.connect();
    await until(() => errors.length === 3000, 20000, 'every refusal');
    expect(namespaces().length).toBe(before);
    expect(new Set(errors.map((e) => e.message))).toEqual(new Set(['unauthorized']));
    expect(errors[0].data?.code).toBe('unauthorized');
    for (const sub of subs) sub.disconnect();
    s.io.engine.close();
    // a valid token for a workspace outside its claim: forbidden, still nothing allocated
    const eve = client(`${g().url}/workspace-secret`, { token: await token('eve', { workspaces: ['other'] }) }, { reconnection: false });
    const refused = await waitFor<Error & { data?: { code: string; message: string } }>(eve, 'connect_error');
    expect(refused.message).toBe('forbidden');
    expect(refused.data?.message).toMatch(/workspace "secret"/);
    expect(namespaces().length).toBe(before);
    // a granted workspace namespace goes away with its last socket
    const ok = await connect(`${g().url}/workspace-mine`, { token: await token('wendy', { workspaces: ['mine'] }) });
    expect(namespaces()).toContain('/workspace-mine');
    ok.disconnect();
    await until(() => !namespaces().includes('/workspace-mine'), 5000, 'the empty workspace namespace to go');
  });

  test('per-socket caps answer limit_exceeded: rooms, presence subscriptions, rooms per message; counted', async () => {
    const s = await connect(g().url, { token: await token('capped') });
    const before = { rooms: await limit('rooms'), presence: await limit('presence_subscriptions'), ids: await limit('room_ids') };
    for (let i = 0; i < 5; i++) expect(code(await s.emitWithAck('join-room', `cap-${i}`))).toBe('ok');
    expect(await s.emitWithAck('join-room', 'cap-5')).toEqual({
      ok: false,
      error: { code: 'limit_exceeded', message: expect.stringMatching(/at most 5 rooms/) },
    });
    expect(code(await s.emitWithAck('join-room', 'cap-0'))).toBe('ok'); // already in: no new room
    expect(code(await s.emitWithAck('leave-room', 'cap-0'))).toBe('ok');
    expect(code(await s.emitWithAck('join-room', 'cap-5'))).toBe('ok');
    const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `p${from + i}`);
    expect(code(await s.emitWithAck('presence:subscribe', ids(10)))).toBe('ok');
    expect(code(await s.emitWithAck('presence:subscribe', ids(1, 10)))).toBe('limit_exceeded');
    expect(code(await s.emitWithAck('presence:subscribe', ids(10)))).toBe('ok'); // the same ones again
    expect(code(await s.emitWithAck('message', { roomIds: ['cap-1', 'cap-2', 'cap-3'], text: 'three' }))).toBe('ok');
    expect(code(await s.emitWithAck('message', { roomIds: ['cap-1', 'cap-2', 'cap-3', 'cap-4'], text: 'four' }))).toBe('limit_exceeded');
    expect(await limit('rooms')).toBe(before.rooms + 1);
    expect(await limit('presence_subscriptions')).toBe(before.presence + 1);
    expect(await limit('room_ids')).toBe(before.ids + 1);
  });

  test('the write budget: a socket flooding big messages to many rooms is rate_limited in bytes; another socket is not', async () => {
    const s = await connect(g().url, { token: await token('flooder') });
    const other = await connect(g().url, { token: await token('calm') });
    const text = 'x'.repeat(15000);
    const before = await metricValue(g().metrics, 'realtime_gateway_rate_limited_total', { scope: 'bytes' });
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) answers.push(code(await s.emitWithAck('message', { roomIds: ['f-1', 'f-2', 'f-3'], text }))!);
    // 45 KB per message against a 40 KB burst refilled at 20 KB/s: most are refused
    expect(answers.filter((a) => a === 'rate_limited').length).toBeGreaterThanOrEqual(6);
    expect(await metricValue(g().metrics, 'realtime_gateway_rate_limited_total', { scope: 'bytes' })).toBeGreaterThan(before);
    expect(code(await other.emitWithAck('message', { roomId: 'f-1', text: 'small' }))).toBe('ok');
    // the budget refills
    await until(async () => code(await s.emitWithAck('message', { roomId: 'f-1', text: 'later' })) === 'ok', 5000, 'the budget to refill');
  });

  test('direct messages: not_found for a user nobody ever saw; an inbox keeps at most INBOX_MAX_BYTES', async () => {
    const s = await connect(g().url, { token: await token('dm-sender') });
    expect(code(await s.emitWithAck('direct-message', { toUserId: 'ghost-1', text: 'hello?' }))).toBe('not_found');
    if (r) expect(await r.keys(`${g().cfg.keyPrefix}:inbox:*ghost-1*`)).toEqual([]);
    await seenOnce(g().url, 'dm-target');
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) {
      const a = await s.emitWithAck('direct-message', { toUserId: 'dm-target', text: `${i}:${'y'.repeat(900)}` });
      expect(a.ok).toBe(true);
      sent.push(a.id);
    }
    const rx = client(g().url, { token: await token('dm-target') });
    const q = await waitFor<{ messages: Array<{ id: string }> }>(rx, 'queued-messages');
    // ~950 bytes each against a 4 KiB cap: the newest few stay, oldest first
    expect(q.messages.length).toBeGreaterThanOrEqual(3);
    expect(q.messages.length).toBeLessThanOrEqual(4);
    expect(q.messages.map((m) => m.id)).toEqual(sent.slice(-q.messages.length));
  });

  test('a pathological rooms glob in a token costs nothing noticeable per join', async () => {
    const s = await connect(g().url, { token: await token('globby', { rooms: ['*a*a*a*a*a*a*a*a*a*a*a*a*b'] }) });
    const room = 'a'.repeat(128);
    const t0 = Date.now();
    expect(code(await s.emitWithAck('join-room', room))).toBe('forbidden');
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  test('token expiry: the transport closes at exp; a client with an auth function reconnects with a fresh token and recovers', async () => {
    let n = 0;
    const auth = async (cb: (a: object) => void) => cb({ token: await token('expiring', {}, { expiresIn: n++ === 0 ? '2s' : '1h' }) });
    const s = ioc(g().url, { auth, transports: ['websocket'], forceNew: true, reconnectionDelay: 100, randomizationFactor: 0 });
    await waitFor(s, 'connect');
    expect(code(await s.emitWithAck('join-room', 'exp-room'))).toBe('ok');
    const reasons: string[] = [];
    s.on('disconnect', (reason) => reasons.push(reason));
    const t0 = Date.now();
    await waitFor(s, 'disconnect', () => true, 8000);
    const closedAfter = Date.now() - t0;
    await waitFor(s, 'connect', () => true, 8000);
    expect(reasons).toEqual(['transport close']);
    expect(closedAfter).toBeLessThan(4000);
    expect(s.recovered).toBe(true);
    expect(code(await s.emitWithAck('message', { roomId: 'exp-room', text: 'after the refresh' }))).toBe('ok');
    s.disconnect();
  });
});
