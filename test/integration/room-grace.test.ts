import Redis from 'ioredis';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  client,
  closeClients,
  connect,
  GatewayProcess,
  RunningGateway,
  spawnService,
  startGateways,
  token,
  uniquePrefix,
  until,
  waitFor,
} from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';
import { startProxy, TcpProxy } from '../helpers/tcp-proxy';

// Room membership across a dropped connection, as users see it: like presence, a connection that
// drops and comes back within the grace period (PRESENCE_GRACE_MS) announces nothing to the room;
// one that does not come back is announced `user-left` once when the grace period ends, by any
// gateway or worker, even when the pod that saw the drop is dead by then.

jest.setTimeout(60000);

const GRACE = 800;
const RECONNECT = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `user-joined` / `user-left` events of `room` seen by `s`, in order. */
function roomEvents(s: ClientSocket, room: string): Array<[string, string]> {
  const ev: Array<[string, string]> = [];
  s.on('user-joined', (e: { room: string; userId: string }) => e.room === room && ev.push(['joined', e.userId]));
  s.on('user-left', (e: { room: string; userId: string }) => e.room === room && ev.push(['left', e.userId]));
  return ev;
}

describe.each([
  ['memory', 1],
  ['redis', 3],
])('room membership across a dropped connection (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  let gateways: RunningGateway[];
  let stop: () => Promise<void>;
  let proxy: TcpProxy;

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const c = await startGateways(n, { REDIS_URL: redis?.url, PRESENCE_GRACE_MS: String(GRACE) });
    gateways = c.gateways;
    stop = c.stop;
    proxy = await startProxy([gateways[0].port]);
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await proxy?.close();
    await stop?.();
    await redis?.stop();
  });

  /** `userId` on the first pod and a witness on the last one, both in `room`; the witness records the room's events. */
  const inRoom = async (room: string, userId: string) => {
    const c = await connect(gateways[0].url, { token: await token(userId) });
    expect(await c.emitWithAck('join-room', room)).toMatchObject({ ok: true });
    const witness = await connect(gateways[n - 1].url, { token: await token(`${userId}-witness`) });
    expect(await witness.emitWithAck('join-room', room)).toMatchObject({ ok: true, members: 2 });
    return { c, witness, ev: roomEvents(witness, room) };
  };

  test.each([
    ['the same pod', () => 0],
    ['another pod (when there is one)', () => n - 1],
  ])(
    'a connection that drops and recovers on %s within the grace period: no user-left, no user-joined, counted throughout',
    async (_where, target) => {
      const room = `blip-${engine}-${target()}`;
      const c = client(proxy.url, { token: await token('blip-user') }, RECONNECT);
      await waitFor(c, 'connect', () => true, 10000);
      expect(await c.emitWithAck('join-room', room)).toMatchObject({ ok: true });
      const witness = await connect(gateways[n - 1].url, { token: await token('blip-witness') });
      expect(await witness.emitWithAck('join-room', room)).toMatchObject({ ok: true, members: 2 });
      const ev = roomEvents(witness, room);

      const back = waitFor(c, 'connect', () => true, 10000);
      proxy.setTargets([gateways[target()].port]);
      proxy.dropAll(); // the network drops the connection; the client reconnects through the proxy
      await back;
      expect(c.recovered).toBe(true);
      expect((await witness.emitWithAck('get-room-members', room)).count).toBe(2);
      await sleep(GRACE * 2 + 300); // well past the grace period: the recovered membership stays
      expect(ev).toEqual([]);
      expect((await witness.emitWithAck('get-room-members', room)).members).toEqual(
        expect.arrayContaining([{ userId: 'blip-user', sockets: 1 }]),
      );

      // it still leaves like any member: one user-left, at once
      expect(await c.emitWithAck('leave-room', room)).toMatchObject({ ok: true });
      await until(() => ev.length === 1, 5000, 'user-left after leave-room');
      expect(ev).toEqual([['left', 'blip-user']]);
      proxy.setTargets([gateways[0].port]);
    },
  );

  test('a connection that drops for good: one user-left when the grace period ends, not before', async () => {
    const room = `gone-${engine}`;
    const { c, witness, ev } = await inRoom(room, 'gone-user');

    const t0 = Date.now();
    c.io.engine.close(); // the transport closes; reconnection is off: it never comes back
    await sleep(GRACE / 2);
    expect(ev).toEqual([]);
    expect((await witness.emitWithAck('get-room-members', room)).count).toBe(2);
    await until(() => ev.length === 1, GRACE * 6, 'user-left after the grace period');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(GRACE - 50);
    expect(ev).toEqual([['left', 'gone-user']]);
    expect(await witness.emitWithAck('get-room-members', room)).toMatchObject({
      count: 1,
      members: [{ userId: 'gone-user-witness', sockets: 1 }],
    });
    await sleep(GRACE);
    expect(ev).toHaveLength(1);
  });

  test('a client that disconnects itself leaves at once (no grace period)', async () => {
    const { c, ev } = await inRoom(`bye-${engine}`, 'bye-user');
    const t0 = Date.now();
    c.disconnect();
    await until(() => ev.length === 1, 5000, 'user-left');
    expect(Date.now() - t0).toBeLessThan(GRACE);
    expect(ev).toEqual([['left', 'bye-user']]);
  });

  test('a second socket of the user that connects fresh during the grace period: neither user-joined nor user-left', async () => {
    const room = `reload-${engine}`;
    const { c: first, witness, ev } = await inRoom(room, 'reload-user');
    first.io.engine.close(); // dropped; the page reloads: a new socket, no recovery
    const second = await connect(gateways[n - 1].url, { token: await token('reload-user') });
    expect(await second.emitWithAck('join-room', room)).toMatchObject({ ok: true, members: 2 });
    await sleep(GRACE * 2 + 300);
    expect(ev).toEqual([]);
    expect((await witness.emitWithAck('get-room-members', room)).members).toEqual(
      expect.arrayContaining([{ userId: 'reload-user', sockets: 1 }]),
    );
  });
});

describe('parked memberships of a pod that dies during the grace period (processes, Redis)', () => {
  let redis: TestRedis;
  let prefix: string;
  const procs: GatewayProcess[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    prefix = uniquePrefix();
    // Heartbeats far apart: nobody reaps the dead pod meanwhile, so the parked entries alone must do it.
    const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, PRESENCE_GRACE_MS: String(GRACE), HEARTBEAT_INTERVAL_MS: '60000' };
    procs.push(await spawnService('gateway', { ...env, POD_NAME: `${prefix}-a` }));
    procs.push(await spawnService('gateway', { ...env, POD_NAME: `${prefix}-b` }));
    procs.push(await spawnService('worker', { ...env, POD_NAME: `${prefix}-w` }));
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await Promise.allSettled(procs.map((p) => p.kill('SIGKILL')));
    await redis?.stop();
  });

  test('the other gateway and the worker both sweep: every user-left is announced exactly once, members drop', async () => {
    const [a, b] = procs;
    const room = 'orphans';
    const users = Array.from({ length: 10 }, (_, i) => `orphan-${i}`);
    const socks = await Promise.all(users.map(async (u) => connect(a.url, { token: await token(u) })));
    for (const s of socks) expect(await s.emitWithAck('join-room', room)).toMatchObject({ ok: true });
    const witness = await connect(b.url, { token: await token('orphan-witness') });
    expect(await witness.emitWithAck('join-room', room)).toMatchObject({ ok: true, members: 11 });
    const ev = roomEvents(witness, room);

    const r = new Redis(redis.url);
    try {
      for (const s of socks) s.io.engine.close();
      // pod a parks the memberships (one due entry per socket), then dies before the grace period ends
      await until(async () => (await r.zcard(`${prefix}:room-leave-due`)) === users.length, 5000, 'parked on pod a');
      const t0 = Date.now();
      await a.kill('SIGKILL');
      await until(() => ev.length === users.length, GRACE * 8, 'every user-left');
      console.log(
        `parked memberships of a SIGKILLed pod: ${users.length} user-left announced ${Date.now() - t0} ms after the kill (grace ${GRACE} ms)`,
      );
      await sleep(GRACE * 2);
      expect(
        ev
          .filter(([k]) => k === 'left')
          .map(([, u]) => u)
          .sort(),
      ).toEqual([...users].sort());
      expect(ev).toHaveLength(users.length);
      expect(await witness.emitWithAck('get-room-members', room)).toMatchObject({
        count: 1,
        members: [{ userId: 'orphan-witness', sockets: 1 }],
      });
      expect(await r.zcard(`${prefix}:room-leave-due`)).toBe(0);
      // nothing left behind in the room: no parked marks, no owed notes
      const fields = await r.hkeys(`${prefix}:room:{/|${room}}:sockets`);
      expect(fields.filter((f) => f.startsWith('~'))).toEqual([]);
    } finally {
      r.disconnect();
    }
  });
});
