import { Cluster } from 'ioredis';
import { closeClients, collect, connect, startGateways, token, until, waitFor } from '../helpers/cluster';
import { startRedisCluster, TestRedisCluster } from '../helpers/redis-cluster';
import { describePresence, GRACE } from './presence-shared';

// The presence suite of presence.test.ts, and a rooms sanity check, on a 3-master Redis Cluster
// through 3 gateways with REDIS_CLUSTER=true.

jest.setTimeout(60000);

let cluster: TestRedisCluster | undefined;
const clusterOnce = async () => (cluster ??= await startRedisCluster());

afterAll(async () => {
  closeClients();
  await cluster?.stop();
});

const seed = (url: string) => {
  const u = new URL(url);
  return new Cluster([{ host: u.hostname, port: Number(u.port) }], { redisOptions: { maxRetriesPerRequest: 1 } });
};

describePresence('presence (redis cluster, 3 gateways)', async () => {
  const c0 = await clusterOnce();
  const c = await startGateways(3, { REDIS_URL: c0.url, REDIS_CLUSTER: 'true', PRESENCE_GRACE_MS: String(GRACE) });
  const prefix = c.gateways[0].cfg.keyPrefix;
  const r = seed(c0.url);
  return {
    urls: c.gateways.map((g) => g.url),
    transitions: async (nsp, userId) => Number((await r.hget(`${prefix}:presence:{${nsp}|${userId}}`, 'v')) ?? 0),
    async stop() {
      await c.stop();
      r.disconnect();
    },
  };
});

describe('rooms and presence keys on a redis cluster (3 gateways)', () => {
  let urls: string[];
  let stop: () => Promise<void>;
  let prefix: string;
  let r: Cluster;
  const user = async (id: string, i: number) => connect(urls[i % urls.length], { token: await token(id) });

  beforeAll(async () => {
    const c0 = await clusterOnce();
    const c = await startGateways(3, { REDIS_URL: c0.url, REDIS_CLUSTER: 'true', PRESENCE_GRACE_MS: String(GRACE) });
    urls = c.gateways.map((g) => g.url);
    stop = c.stop;
    prefix = c.gateways[0].cfg.keyPrefix;
    r = seed(c0.url);
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await stop?.();
    r?.disconnect();
  });

  test('join, message and get-room-members across 3 gateways; user-left on disconnect', async () => {
    const a = await user('alice', 0);
    const b1 = await user('bob', 1);
    const b2 = await user('bob', 2);
    expect(await a.emitWithAck('join-room', 'lobby')).toEqual({ ok: true, room: 'lobby', members: 1 });
    const joinedSeen = collect(a, 'user-joined');
    expect(await b1.emitWithAck('join-room', 'lobby')).toEqual({ ok: true, room: 'lobby', members: 2 });
    expect(await b2.emitWithAck('join-room', 'lobby')).toEqual({ ok: true, room: 'lobby', members: 2 });
    const got = [a, b1, b2].map((s) => waitFor(s, 'message', (m: any) => m.text === 'hi'));
    const ack = await a.emitWithAck('message', { roomId: 'lobby', text: 'hi' });
    expect(ack).toEqual({ ok: true, id: expect.any(String), timestamp: expect.any(Number) });
    for (const m of await Promise.all(got)) expect(m).toMatchObject({ id: ack.id, room: 'lobby', userId: 'alice', text: 'hi' });
    expect(joinedSeen).toHaveLength(1);
    const members = await b2.emitWithAck('get-room-members', 'lobby');
    expect(members.count).toBe(2);
    expect(members.members.sort((x: any, y: any) => x.userId.localeCompare(y.userId))).toEqual([
      { userId: 'alice', sockets: 1 },
      { userId: 'bob', sockets: 2 },
    ]);
    const left = collect(a, 'user-left');
    b1.disconnect();
    await until(
      async () => (await a.emitWithAck('get-room-members', 'lobby')).members.find((m: any) => m.userId === 'bob')?.sockets === 1,
      5000,
      'one bob socket left',
    );
    const gone = waitFor(a, 'user-left');
    b2.disconnect();
    expect(await gone).toMatchObject({ room: 'lobby', userId: 'bob' });
    expect(left).toHaveLength(1);
    expect(await a.emitWithAck('get-room-members', 'lobby')).toEqual({
      ok: true,
      room: 'lobby',
      count: 1,
      members: [{ userId: 'alice', sockets: 1 }],
    });
  });

  test('presence of users whose keys live on every master: bulk lookup and online counts', async () => {
    // user ids hashing to each of the 3 masters' slots
    const ids = Array.from({ length: 30 }, (_, i) => `spread${i}`);
    const nodesOf = new Set<string>();
    const slots = await r.cluster('SLOTS');
    for (const id of ids) {
      const slot = Number(await r.cluster('KEYSLOT', `${prefix}:presence:{/|${id}}`));
      const owner = slots.find(([lo, hi]) => slot >= lo && slot <= hi);
      nodesOf.add(String(owner?.[2]?.[1]));
    }
    expect(nodesOf.size).toBe(3);
    const watcher = await user('spread-watcher', 0);
    expect((await watcher.emitWithAck('presence:subscribe', ids)).users.every((u: any) => u.status === 'offline')).toBe(true);
    const events = collect(watcher, 'presence');
    const socks = await Promise.all(ids.map((id, i) => user(id, i)));
    await until(() => events.length === ids.length, 10000, 'every online');
    const res = await watcher.emitWithAck('get-presence', ids);
    expect(res.users.map((u: any) => u.status)).toEqual(ids.map(() => 'online'));
    for (const s of socks) s.disconnect();
    await until(() => events.length === ids.length * 2, 10000, 'every offline');
    expect(new Set(events.filter((e) => e.status === 'offline').map((e) => e.userId)).size).toBe(ids.length);
    expect((await watcher.emitWithAck('get-presence', ids)).users.every((u: any) => u.status === 'offline')).toBe(true);
  });

  test('a dropped connection in rooms on every master: memberships parked, one user-left per room after the grace period, nothing left behind', async () => {
    const rooms = Array.from({ length: 12 }, (_, i) => `spread-room-${i}`);
    const slots = await r.cluster('SLOTS');
    const masters = new Set<string>();
    for (const room of rooms) {
      const slot = Number(await r.cluster('KEYSLOT', `${prefix}:room:{/|${room}}:sockets`));
      masters.add(String(slots.find(([lo, hi]) => slot >= lo && slot <= hi)?.[2]?.[1]));
    }
    expect(masters.size).toBe(3);
    const dropper = await user('dropper', 1);
    const watcher = await user('room-watcher', 2);
    for (const room of rooms) {
      expect(await dropper.emitWithAck('join-room', room)).toMatchObject({ ok: true });
      expect(await watcher.emitWithAck('join-room', room)).toMatchObject({ ok: true, members: 2 });
    }
    const left = collect(watcher, 'user-left');
    const t0 = Date.now();
    dropper.io.engine.close(); // the transport closes; this client does not reconnect
    await until(() => left.length === rooms.length, GRACE * 8, 'a user-left per room');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(GRACE - 50);
    expect(left.map((e) => e.room).sort()).toEqual([...rooms].sort());
    expect(left.every((e) => e.userId === 'dropper')).toBe(true);
    await new Promise((res) => setTimeout(res, GRACE));
    expect(left).toHaveLength(rooms.length);
    for (const room of rooms) {
      expect((await watcher.emitWithAck('get-room-members', room)).count).toBe(1);
      expect((await r.hkeys(`${prefix}:room:{/|${room}}:sockets`)).filter((f) => f.startsWith('~'))).toEqual([]);
    }
    expect(await r.zcard(`${prefix}:room-leave-due`)).toBe(0);
  });
});
