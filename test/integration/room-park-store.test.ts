import http from 'http';
import Redis from 'ioredis';
import { Registry } from 'prom-client';
import { Server } from 'socket.io';
import { createEngine, Engine } from '../../services/core/engine';
import { createLogger } from '../../services/core/platform/logger';
import { createMetrics } from '../../services/core/platform/metrics';
import { sweepParkedRooms } from '../../services/core/rooms/reaper';
import { Shards } from '../../services/core/adapter/shards';
import { clientRoom } from '../../services/core/redis/keys';
import { testConfig, uniquePrefix } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// Parked room memberships at the store level, with the sweep's clock in the test's hands: the
// orderings that are hard to time through sockets (a socket that comes back and drops again, a
// socket id that leaves twice) on a real redis-server and on the memory engine.

const POD = 'pod-a';
const SID = 'sid-1';

describe.each(['redis', 'memory'])('parked memberships (%s engine)', (kind) => {
  let redis: TestRedis | undefined;
  let engine: Engine;
  let io: Server;
  let r: Redis | undefined;

  beforeAll(async () => {
    if (kind === 'redis') redis = await startRedis();
    const cfg = testConfig({ REDIS_URL: redis?.url, REDIS_KEY_PREFIX: uniquePrefix(), POD_NAME: POD });
    engine = createEngine(cfg, createLogger('test', 'silent', POD), createMetrics(new Registry(), { defaults: false }), {
      holdsSockets: false,
    });
    io = new Server(http.createServer()); // never listens: the adapter is all these tests use
    engine.attach(io);
    await engine.ready();
    if (redis) r = new Redis(redis.url);
  });
  afterAll(async () => {
    // closes the adapters (their timers); the HTTP server it then closes was never listening
    await new Promise<void>((resolve) => (io ? io.close(() => resolve()) : resolve()));
    await engine?.close();
    r?.disconnect();
    await redis?.stop();
  });

  /** user-left announcements written to the history of `room` (Redis engine). */
  const leftCount = async (room: string): Promise<number> => {
    if (!r) throw new Error('Redis engine only');
    const shards = new Shards(engine.keys.prefix, testConfig().adapterShards);
    const entries = await r.xrange(shards.stream(shards.of('/', clientRoom(room)), '/', clientRoom(room)), '-', '+');
    return entries.filter(([, f]) => f.join(' ').includes('user-left') && f.join(' ').includes(`"room":"${room}"`)).length;
  };
  const member = async (room: string) => (await engine.rooms.roomMembers('/', room)).map((m) => m.userId);
  const sweep = (now: number) => sweepParkedRooms(engine, io, { now });

  test('a socket that came back and dropped again keeps its room until its new deadline, not the first one', async () => {
    await engine.rooms.roomJoin('/', 'r1', SID, 'ann', POD);
    await engine.rooms.roomJoin('/', 'r2', SID, 'ann', POD);
    await engine.rooms.parkRooms('/', SID, POD, ['r1', 'r2'], 1000);
    // back (recovered on this pod): re-joined, so unparked; leaves r2; drops again later
    await engine.rooms.roomJoin('/', 'r1', SID, 'ann', POD);
    await engine.rooms.roomJoin('/', 'r2', SID, 'ann', POD);
    await engine.rooms.roomLeave('/', 'r2', SID, POD);
    await engine.rooms.parkRooms('/', SID, POD, ['r1'], 2000);

    expect(await sweep(1500)).toBe(0); // the first deadline passed: nothing goes
    expect(await member('r1')).toEqual(['ann']);
    if (r) expect(await leftCount('r1')).toBe(0);
    expect(await sweep(2500)).toBe(1); // the second one: r1 goes, announced once
    expect(await member('r1')).toEqual([]);
    expect(await sweep(3000)).toBe(0);
    if (r) {
      expect(await leftCount('r1')).toBe(1);
      expect(await r.zcard(engine.keys.roomLeaveDue())).toBe(0);
    }
  });

  test('the same socket id leaving twice (recovered after its grace period, then gone) is announced twice', async () => {
    await engine.rooms.roomJoin('/', 'r3', 'sid-2', 'bob', POD);
    await engine.rooms.parkRooms('/', 'sid-2', POD, ['r3'], 5000);
    expect(await sweep(5000)).toBe(1);
    expect(await member('r3')).toEqual([]);
    // recovered later with the same socket id (within the recovery window): a member again
    await engine.rooms.roomJoin('/', 'r3', 'sid-2', 'bob', POD);
    expect(await member('r3')).toEqual(['bob']);
    await engine.rooms.parkRooms('/', 'sid-2', POD, ['r3'], 6000);
    expect(await sweep(6000)).toBe(1);
    expect(await member('r3')).toEqual([]);
    if (r) {
      expect(await leftCount('r3')).toBe(2);
      const fields = await r.hkeys(engine.keys.room('/', 'r3').sockets);
      expect(fields).toEqual([]);
    }
  });

  test('a socket recovered on this pod before its deadline stays, and nothing is announced', async () => {
    await engine.rooms.roomJoin('/', 'r4', 'sid-3', 'cy', POD);
    await engine.rooms.parkRooms('/', 'sid-3', POD, ['r4'], 7000);
    await engine.rooms.roomJoin('/', 'r4', 'sid-3', 'cy', POD);
    expect(await sweep(8000)).toBe(0);
    expect(await member('r4')).toEqual(['cy']);
    if (r) {
      expect(await leftCount('r4')).toBe(0);
      expect((await r.hkeys(engine.keys.room('/', 'r4').sockets)).filter((f) => f.startsWith('~'))).toEqual([]);
      expect(await r.zcard(engine.keys.roomLeaveDue())).toBe(0);
    }
  });
});
