import { closeClients, collect, connect, startGateways, token, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// The same behaviour on both engines: one in-memory node, and three gateways sharing Redis.
describe.each([
  ['memory', 1],
  ['redis', 3],
])('rooms and messages (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  let urls: string[];
  let stop: () => Promise<void>;
  const url = (i: number) => urls[i % urls.length];

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const c = await startGateways(n, { REDIS_URL: redis?.url });
    urls = c.gateways.map((g) => g.url);
    stop = c.stop;
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    await stop();
    await redis?.stop();
  });

  const user = async (id: string, i: number, claims: Record<string, unknown> = {}) => connect(url(i), { token: await token(id, claims) });

  test('join-room answers distinct members, sends joined, and user-joined only for the first socket of a user', async () => {
    const a = await user('alice', 0);
    const b1 = await user('bob', 1);
    const b2 = await user('bob', 2);
    expect(await a.emitWithAck('join-room', 'lobby')).toEqual({ ok: true, room: 'lobby', members: 1 });
    const joinedSeen = collect(a, 'user-joined');
    const joined = waitFor(b1, 'joined');
    expect(await b1.emitWithAck('join-room', 'lobby')).toEqual({ ok: true, room: 'lobby', members: 2 });
    expect(await joined).toEqual({ room: 'lobby' });
    await until(() => joinedSeen.length === 1, 5000, 'user-joined');
    expect(await b2.emitWithAck('join-room', 'lobby')).toEqual({ ok: true, room: 'lobby', members: 2 });
    // a message after the second join proves ordering: a saw exactly one user-joined by then
    const probe = waitFor(a, 'message');
    await b2.emitWithAck('message', { roomId: 'lobby', text: 'probe' });
    await probe;
    expect(joinedSeen).toHaveLength(1);
    expect(joinedSeen[0]).toMatchObject({ room: 'lobby', userId: 'bob' });
    expect(typeof joinedSeen[0].timestamp).toBe('number');
    const members = await a.emitWithAck('get-room-members', 'lobby');
    expect(members.ok).toBe(true);
    expect(members.count).toBe(2);
    expect(members.members.sort((x: any, y: any) => x.userId.localeCompare(y.userId))).toEqual([
      { userId: 'alice', sockets: 1 },
      { userId: 'bob', sockets: 2 },
    ]);
  });

  test('user-left fires when the last socket of a user leaves, and on disconnect', async () => {
    const a = await user('carol', 0);
    const d1 = await user('dave', 1);
    const d2 = await user('dave', 2);
    for (const s of [a, d1, d2]) await s.emitWithAck('join-room', 'exit');
    const left = collect(a, 'user-left');
    expect(await d1.emitWithAck('leave-room', 'exit')).toEqual({ ok: true, room: 'exit' });
    const probe = waitFor(a, 'message');
    await d2.emitWithAck('message', { roomId: 'exit', text: 'still here' });
    await probe;
    expect(left).toHaveLength(0);
    const gone = waitFor(a, 'user-left');
    d2.disconnect();
    expect(await gone).toMatchObject({ room: 'exit', userId: 'dave' });
    expect((await a.emitWithAck('get-room-members', 'exit')).count).toBe(1);
  });

  test('a message reaches every member once (several rooms), exceptSender excludes the sender', async () => {
    const s = await user('sender', 0);
    const r1 = await user('r1', 1);
    const r2 = await user('r2', 2);
    const out = await user('outsider', 1);
    await s.emitWithAck('join-room', 'm1');
    await r1.emitWithAck('join-room', 'm1');
    await r1.emitWithAck('join-room', 'm2');
    await r2.emitWithAck('join-room', 'm2');
    const got = { s: collect(s, 'message'), r1: collect(r1, 'message'), r2: collect(r2, 'message'), out: collect(out, 'message') };
    const ack = await s.emitWithAck('message', { roomIds: ['m1', 'm2'], text: 'hello', data: { n: 1 } });
    expect(ack).toEqual({ ok: true, id: expect.any(String), timestamp: expect.any(Number) });
    const ack2 = await s.emitWithAck('message', { roomId: 'm1', text: 'not me', exceptSender: true });
    // r1 gets both messages; once it has, a probe to everyone proves nothing else is in flight
    await until(() => got.r1.length === 2 && got.r2.length === 1 && got.s.length === 1, 5000, 'deliveries');
    const probe = await s.emitWithAck('message', { roomIds: ['m1', 'm2'], text: 'probe', exceptSender: true });
    await until(() => got.r1.length === 3 && got.r2.length === 2, 5000, 'probe');
    expect(got.r1[2].id).toBe(probe.id);
    got.r1.pop();
    got.r2.pop();
    expect(got.r1.map((m) => m.id)).toEqual([ack.id, ack2.id]);
    expect(got.r1[0]).toEqual({ id: ack.id, room: 'm1', userId: 'sender', text: 'hello', data: { n: 1 }, timestamp: ack.timestamp });
    expect(got.r2.map((m) => m.id)).toEqual([ack.id]);
    expect(got.r2[0].room).toBe('m2');
    expect(got.s.map((m) => m.id)).toEqual([ack.id]);
    expect(got.out).toHaveLength(0);
  });

  test('validation: bad room ids, reserved rooms, rooms claim, oversized and malformed messages', async () => {
    const s = await user('val', 0, { rooms: ['team-*'] });
    expect((await s.emitWithAck('join-room', 'x'.repeat(129))).error.code).toBe('bad_request');
    expect((await s.emitWithAck('join-room', 'has space')).error.code).toBe('bad_request');
    expect((await s.emitWithAck('join-room', 42)).error.code).toBe('bad_request');
    for (const r of ['user:bob', 'presence:x', '_hidden']) expect((await s.emitWithAck('join-room', r)).error.code).toBe('forbidden');
    expect((await s.emitWithAck('join-room', 'other')).error.code).toBe('forbidden');
    expect((await s.emitWithAck('join-room', 'team-a')).ok).toBe(true);
    expect((await s.emitWithAck('message', { roomId: 'team-a', text: 'x'.repeat(20000) })).error.code).toBe('too_large');
    expect((await s.emitWithAck('message', { roomId: 'team-a', roomIds: ['team-a'] })).error.code).toBe('bad_request');
    expect((await s.emitWithAck('message', { roomId: 'team-a', extra: 1 })).error.code).toBe('bad_request');
    expect((await s.emitWithAck('message', 'nope')).error.code).toBe('bad_request');
    expect((await s.emitWithAck('message', { roomId: 'other', text: 'x' })).error.code).toBe('forbidden');
    expect((await s.emitWithAck('no-such-event', {})).error.code).toBe('bad_request');
    // events without an ack are dropped; the socket keeps working
    s.emit('message', { roomId: 'team-a', text: 'no ack' });
    s.emit('join-room');
    expect((await s.emitWithAck('get-room-members', 'team-a')).ok).toBe(true);
    expect(s.connected).toBe(true);
  });

  test('namespaces are isolated: workspace rooms never leak into / or other workspaces', async () => {
    const t = await token('ws-user', { workspaces: ['a', 'b'] });
    const root = await connect(url(0), { token: t });
    const wa = await connect(`${url(1)}/workspace-a`, { token: t });
    const wb = await connect(`${url(2)}/workspace-b`, { token: t });
    for (const s of [root, wa, wb]) await s.emitWithAck('join-room', 'same');
    const got = { root: collect(root, 'message'), wb: collect(wb, 'message') };
    const m = waitFor(wa, 'message');
    await wa.emitWithAck('message', { roomId: 'same', text: 'only a' });
    await m;
    const probe = waitFor(wb, 'message');
    await wb.emitWithAck('message', { roomId: 'same', text: 'only b' });
    await probe;
    expect(got.wb.map((x) => x.text)).toEqual(['only b']);
    expect(got.root).toHaveLength(0);
    expect((await wa.emitWithAck('get-room-members', 'same')).count).toBe(1);
  });
});
