import type { Socket as ClientSocket } from 'socket.io-client';
import { closeClients, collect, connect, RunningGateway, startGateways, token, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

interface Stats {
  ok: true;
  pods: Array<{ id: string; connections: number; lastHeartbeat: number }>;
  connections: number;
  onlineUsers: number;
  rooms: number;
}

// One in-memory node, and three gateways sharing Redis: the admin answers must be the same.
describe.each([
  ['memory', 1],
  ['redis', 3],
])('admin namespace (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  let gws: RunningGateway[];
  let stop: () => Promise<void>;
  const startedAt = Date.now();
  const url = (i: number) => gws[i % gws.length].url;

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const c = await startGateways(n, { REDIS_URL: redis?.url });
    gws = c.gateways;
    stop = c.stop;
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await stop();
    await redis?.stop();
  });

  const user = async (id: string, i: number, claims: Record<string, unknown> = {}, nsp = '') =>
    connect(`${url(i)}${nsp}`, { token: await token(id, claims) });
  const stats = async (admin: ClientSocket): Promise<Stats> => admin.emitWithAck('admin:stats');

  /**
   * An admin on pod 0, once every pod answers stats and sockets of earlier tests are gone
   * (the admin itself is the only connection left).
   */
  async function admin(): Promise<ClientSocket> {
    const a = await user('boss', 0, { roles: ['admin'] }, '/admin');
    await until(
      async () => {
        const s = await stats(a);
        return s.ok && s.connections === 1 && s.pods.length === n;
      },
      15000,
      'a quiet cluster',
    );
    return a;
  }

  /** A client socket that answers `event` through its ack callback (or never, when `answer` is false). */
  function answering(s: ClientSocket, event: string, name: string, answer = true): unknown[] {
    const got: unknown[] = [];
    s.on(event, (data: unknown, ack?: (r: unknown) => void) => {
      got.push(data);
      if (answer) ack?.({ from: name, echo: data });
    });
    return got;
  }

  test('admin:stats counts pods, connections, distinct users and rooms across the cluster', async () => {
    const a = await admin();
    const alice1 = await user('alice', 0);
    const alice2 = await user('alice', 1);
    const bob = await user('bob', 2);
    const carol = await user('carol', 1, { workspaces: ['acme'] }, '/workspace-acme');
    expect((await alice1.emitWithAck('join-room', 'r1')).ok).toBe(true);
    expect((await alice2.emitWithAck('join-room', 'r1')).ok).toBe(true);
    expect((await bob.emitWithAck('join-room', 'r1')).ok).toBe(true);
    expect((await bob.emitWithAck('join-room', 'r2')).ok).toBe(true);
    // the same room name in a workspace is another room
    expect((await carol.emitWithAck('join-room', 'r1')).ok).toBe(true);

    const t0 = Date.now();
    const s = await stats(a);
    // every pod answers at once (a single node has nobody to wait for)
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(s).toEqual({
      ok: true,
      pods: expect.any(Array),
      connections: 5, // 4 clients + the admin
      onlineUsers: 4, // boss, alice (2 sockets), bob, carol
      rooms: 3, // / r1, / r2, /workspace-acme r1
    });
    const ids = gws.map((g) => g.cfg.podName).sort();
    expect(s.pods.map((p) => p.id)).toEqual(ids);
    // pod 0: admin + alice1; pod 1: alice2 + carol; pod 2: bob (memory: all five on one pod)
    const expected = n === 1 ? [5] : [2, 2, 1];
    expect(s.pods.map((p) => p.connections)).toEqual(expected);
    for (const p of s.pods) {
      expect(Object.keys(p).sort()).toEqual(['connections', 'id', 'lastHeartbeat']);
      expect(p.lastHeartbeat).toBeGreaterThanOrEqual(startedAt);
      expect(p.lastHeartbeat).toBeLessThanOrEqual(Date.now());
    }

    // numbers go down when sockets leave
    bob.disconnect();
    await until(async () => (await stats(a)).connections === 4, 5000, 'bob to be gone');
    expect(await stats(a)).toMatchObject({ connections: 4, onlineUsers: 3, rooms: 2 });
    alice1.disconnect();
    await until(async () => (await stats(a)).connections === 3, 5000, 'one alice socket to be gone');
    expect(await stats(a)).toMatchObject({ connections: 3, onlineUsers: 3, rooms: 2 });
  });

  test('admin:broadcast collects the acknowledgements of clients on every pod; a silent client is missing', async () => {
    const a = await admin();
    const c0 = await user('u0', 0);
    const c1 = await user('u1', 1);
    const c2 = await user('u2', 2);
    const mute = await user('mute', n - 1);
    const got = [answering(c0, 'notice', 'u0'), answering(c1, 'notice', 'u1'), answering(c2, 'notice', 'u2')];
    const muteGot = answering(mute, 'notice', 'mute', false);
    const adminGot = collect(a, 'notice');

    const t0 = Date.now();
    const r = await a.emitWithAck('admin:broadcast', { event: 'notice', data: { text: 'maintenance' }, timeoutMs: 1500 });
    const elapsed = Date.now() - t0;
    expect(r).toEqual({ ok: true, acked: 3, missing: 1, responses: expect.any(Array) });
    expect(r.responses).toHaveLength(3);
    expect(r.responses).toEqual(
      expect.arrayContaining([
        { from: 'u0', echo: { text: 'maintenance' } },
        { from: 'u1', echo: { text: 'maintenance' } },
        { from: 'u2', echo: { text: 'maintenance' } },
      ]),
    );
    // it waited for the silent client up to timeoutMs, not much longer
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(elapsed).toBeLessThan(8000);
    for (const g of got) expect(g).toEqual([{ text: 'maintenance' }]);
    expect(muteGot).toEqual([{ text: 'maintenance' }]);
    expect(adminGot).toHaveLength(0); // the /admin namespace is not the target
    expect(mute.connected).toBe(true);
  });

  test('admin:broadcast answers as soon as every client acked, well before timeoutMs', async () => {
    const a = await admin();
    for (let i = 0; i < 3; i++) answering(await user(`fast${i}`, i), 'ping', `fast${i}`);
    const t0 = Date.now();
    const r = await a.emitWithAck('admin:broadcast', { event: 'ping', data: 1, timeoutMs: 30000 });
    expect(r).toMatchObject({ ok: true, acked: 3, missing: 0 });
    expect(Date.now() - t0).toBeLessThan(10000);
    // with nobody to reach it answers at once, too
    const empty = await a.emitWithAck('admin:broadcast', { event: 'ping', data: 1, room: 'nobody-here', timeoutMs: 30000 });
    expect(empty).toEqual({ ok: true, acked: 0, missing: 0, responses: [] });
  });

  test('admin:broadcast with a room reaches only that room, on every pod', async () => {
    const a = await admin();
    const inRoom = [await user('ops0', 0), await user('ops1', 1), await user('ops2', 2)];
    const outside = await user('outsider', 1);
    for (const s of inRoom) expect((await s.emitWithAck('join-room', 'ops')).ok).toBe(true);
    const got = inRoom.map((s, i) => answering(s, 'alert', `ops${i}`));
    const outsideGot = answering(outside, 'alert', 'outsider');
    const r = await a.emitWithAck('admin:broadcast', { room: 'ops', event: 'alert', data: 'disk full', timeoutMs: 5000 });
    expect(r).toMatchObject({ ok: true, acked: 3, missing: 0 });
    expect(r.responses.map((x: { from: string }) => x.from).sort()).toEqual(['ops0', 'ops1', 'ops2']);
    for (const g of got) expect(g).toEqual(['disk full']);
    // a probe broadcast to everyone proves nothing else was in flight for the outsider
    const probe = await a.emitWithAck('admin:broadcast', { event: 'alert', data: 'probe', timeoutMs: 5000 });
    expect(probe).toMatchObject({ acked: 4, missing: 0 });
    expect(outsideGot).toEqual(['probe']);
  });

  test('admin:broadcast to a workspace namespace reaches only that workspace, also from a pod without it', async () => {
    const a = await admin();
    // Several fresh workspaces: each exists only on the other pods when the admin's pod is asked
    // (on the memory engine, on the only pod), which once made the answer miss a pod at random.
    for (let i = 0; i < 20; i++) {
      const ws = `zeta${i}`;
      const claims = { workspaces: [ws] };
      const w1 = await user(`wz1-${i}`, 1, claims, `/workspace-${ws}`);
      const w2 = await user(`wz2-${i}`, 2, claims, `/workspace-${ws}`);
      const root = await user(`wz1-${i}`, 0, claims);
      const got = [answering(w1, 'ws-notice', 'wz1'), answering(w2, 'ws-notice', 'wz2')];
      const rootGot = answering(root, 'ws-notice', 'root');
      const r = await a.emitWithAck('admin:broadcast', {
        namespace: `/workspace-${ws}`,
        event: 'ws-notice',
        data: { v: i },
        timeoutMs: 5000,
      });
      expect(r).toMatchObject({ ok: true, acked: 2, missing: 0 });
      expect(r.responses).toEqual(
        expect.arrayContaining([
          { from: 'wz1', echo: { v: i } },
          { from: 'wz2', echo: { v: i } },
        ]),
      );
      for (const g of got) expect(g).toEqual([{ v: i }]);
      expect(rootGot).toHaveLength(0);
      for (const s of [w1, w2, root]) s.disconnect();
    }
  });

  test('admin:broadcast refuses bad input with bad_request (and forbidden / not_found where they apply)', async () => {
    const a = await admin();
    const code = async (payload: unknown) => (await a.emitWithAck('admin:broadcast', payload)).error?.code;
    expect(await code({ data: 1 })).toBe('bad_request');
    expect(await code({ event: 'disconnect', data: 1 })).toBe('bad_request');
    expect(await code({ event: 'has space', data: 1 })).toBe('bad_request');
    expect(await code({ event: 'n', data: 1, timeoutMs: 1 })).toBe('bad_request');
    expect(await code({ event: 'n', data: 1, timeoutMs: 120000 })).toBe('bad_request');
    expect(await code({ event: 'n', data: 1, timeoutMs: 'soon' })).toBe('bad_request');
    expect(await code({ event: 'n', data: 1, room: 'bad room' })).toBe('bad_request');
    expect(await code({ event: 'n', data: 1, namespace: 'no-slash' })).toBe('bad_request');
    expect(await code({ event: 'n', data: 1, extra: true })).toBe('bad_request');
    expect(await code('notice')).toBe('bad_request');
    expect(await code(null)).toBe('bad_request');
    const bad = await a.emitWithAck('admin:broadcast', { data: 1 });
    expect(bad.error.message).toMatch(/event/);
    expect(await code({ event: 'n', data: 1, room: 'user:alice' })).toBe('forbidden');
    expect(await code({ event: 'n', data: 1, namespace: '/nope' })).toBe('not_found');
    // without an ack nothing happens, and the admin socket keeps working
    a.emit('admin:broadcast', { event: 'n', data: 1 });
    a.emit('admin:disconnect-user', { userId: 'x' });
    expect((await stats(a)).ok).toBe(true);
    expect(a.connected).toBe(true);
  });

  test('admin:disconnect-user disconnects every socket of that user on every pod and namespace', async () => {
    const a = await admin();
    const claims = { workspaces: ['acme'] };
    const victim = [
      await user('victim', 0, claims),
      await user('victim', 1, claims),
      await user('victim', 2, claims),
      await user('victim', 1, claims, '/workspace-acme'),
    ];
    const bystander = await user('bystander', 2);
    const gone = victim.map((s) => waitFor(s, 'disconnect'));
    const r = await a.emitWithAck('admin:disconnect-user', { userId: 'victim' });
    expect(r).toEqual({ ok: true, disconnected: 4 });
    expect(await Promise.all(gone)).toEqual([
      'io server disconnect',
      'io server disconnect',
      'io server disconnect',
      'io server disconnect',
    ]);
    expect(bystander.connected).toBe(true);
    expect((await bystander.emitWithAck('join-room', 'still-here')).ok).toBe(true);
    expect(a.connected).toBe(true);
    await until(async () => (await stats(a)).connections === 2, 5000, 'the victim sockets to be gone');
    // nobody left to disconnect
    expect(await a.emitWithAck('admin:disconnect-user', { userId: 'victim' })).toEqual({ ok: true, disconnected: 0 });
    expect(await a.emitWithAck('admin:disconnect-user', { userId: 'never-seen' })).toEqual({ ok: true, disconnected: 0 });
    // bad input
    for (const bad of [{}, { userId: '' }, { userId: 'has space' }, { userId: 7 }, 'victim', { userId: 'v', extra: 1 }]) {
      expect((await a.emitWithAck('admin:disconnect-user', bad)).error.code).toBe('bad_request');
    }
  });

  test('an admin can disconnect another admin, including itself', async () => {
    const a = await admin();
    const other = await user('other-admin', n - 1, { roles: ['admin'] }, '/admin');
    const otherGone = waitFor(other, 'disconnect');
    expect(await a.emitWithAck('admin:disconnect-user', { userId: 'other-admin' })).toEqual({ ok: true, disconnected: 1 });
    expect(await otherGone).toBe('io server disconnect');
    expect(a.connected).toBe(true);
  });

  test('a non-admin cannot connect to /admin, and admin events are unknown outside it', async () => {
    const err = await user('pleb', 0, {}, '/admin').then(
      () => undefined,
      (e: Error & { data?: unknown }) => e,
    );
    expect(err?.message).toBe('forbidden');
    expect(err?.data).toEqual({ code: 'forbidden', message: expect.any(String) });
    const pleb = await user('pleb', 0, { roles: ['user'] });
    for (const ev of ['admin:stats', 'admin:broadcast', 'admin:disconnect-user'])
      expect((await pleb.emitWithAck(ev, { userId: 'boss' })).error.code).toBe('bad_request');
  });
});
