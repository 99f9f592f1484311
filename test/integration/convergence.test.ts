import fs from 'fs';
import Redis from 'ioredis';
import path from 'path';
import { Keys } from '../../services/core/redis/keys';
import type { Socket as ClientSocket } from 'socket.io-client';
import { client, closeClients, connect, GatewayProcess, spawnService, token, uniquePrefix, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';
import { startProxy, TcpProxy } from '../helpers/tcp-proxy';

// Nothing stays wrong after a fault (issue #13, ARCHITECTURE.md rule 12): a pod's incarnation is
// not its name, local truth wins after a Redis outage, a recovery on the pod that still holds the
// old socket does not lose it later, an interrupted recovery can be retried, and a pod paused
// twice in a row never makes its clients' offsets jump past what they missed.

jest.setTimeout(120000);

const RECONNECT = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0 };
const presenceOf = async (s: ClientSocket, userId: string) =>
  ((await s.emitWithAck('get-presence', [userId])) as { users: Array<{ status: string }> }).users[0].status;
const membersOf = async (s: ClientSocket, room: string) =>
  ((await s.emitWithAck('get-room-members', room)) as { members: Array<{ userId: string; sockets: number }> }).members;

describe('convergence after faults (redis, gateway processes)', () => {
  let redis: TestRedis;
  let r: Redis;
  const procs: GatewayProcess[] = [];
  afterEach(async () => {
    closeClients();
    await Promise.allSettled(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });
  beforeAll(async () => {
    redis = await startRedis({ appendonly: true });
    r = new Redis(redis.url);
  });
  afterAll(async () => {
    r.disconnect();
    await redis.stop();
  });
  // Heartbeats of 5 s: the reaper would take 15 s; what is checked here must be quicker.
  const spawn = (prefix: string, name: string, env: Record<string, string> = {}) =>
    spawnService('gateway', {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      POD_NAME: name,
      HEARTBEAT_INTERVAL_MS: '5000',
      PRESENCE_GRACE_MS: '300',
      ...env,
    });

  test('a gateway SIGKILLed and restarted under the same name reaps its predecessor at start: no ghost', async () => {
    const prefix = uniquePrefix();
    const a = await spawn(prefix, `${prefix}-gw`);
    const watcher = await spawn(prefix, `${prefix}-watch`);
    procs.push(a, watcher);
    const ghost = await connect(a.url, { token: await token('ghost') });
    expect((await ghost.emitWithAck('join-room', 'haunted')).ok).toBe(true);
    const w = await connect(watcher.url, { token: await token('witness') });
    expect(await presenceOf(w, 'ghost')).toBe('online');
    await a.kill('SIGKILL');
    const t0 = Date.now();
    const again = await spawn(prefix, `${prefix}-gw`); // Kubernetes restarts the container in its pod: same name
    procs.push(again);
    await until(async () => (await presenceOf(w, 'ghost')) === 'offline', 5000, 'the ghost offline');
    await until(async () => (await membersOf(w, 'haunted')).length === 0, 5000, 'the ghost out of the room');
    console.log(`predecessor reaped ${Date.now() - t0} ms after the restart (the reaper alone: 15 s)`);
    expect(Date.now() - t0).toBeLessThan(10000);
  });

  test('a recovery on the pod that still holds the old socket (not timed out yet) does not lose it when the old one goes', async () => {
    const prefix = uniquePrefix();
    const g = await spawn(prefix, `${prefix}-gw`);
    procs.push(g);
    const first = client(g.url, { token: await token('zed') }, { reconnection: false });
    await Promise.all([waitFor(first, 'connect'), waitFor(first, 'session')]);
    expect((await first.emitWithAck('join-room', 'z-room')).ok).toBe(true);
    const pid = (first as unknown as { _pid: string })._pid;
    const offset = (first as unknown as { _lastOffset: string })._lastOffset;
    // The same session comes back while the server still holds `first` (e.g. its polling
    // connection failed at the balancer, not at the pod).
    const second = await connect(g.url, { token: await token('zed'), pid, offset });
    await until(() => !first.connected, 5000, 'the old socket to be let go');
    const other = await connect(g.url, { token: await token('otto') });
    const got: string[] = [];
    second.on('message', (m: { text: string }) => got.push(m.text));
    await new Promise((res) => setTimeout(res, 800)); // past the grace period: a lost registration would show
    expect(await membersOf(other, 'z-room')).toEqual([{ userId: 'zed', sockets: 1 }]);
    expect(await presenceOf(other, 'zed')).toBe('online');
    expect((await other.emitWithAck('message', { roomId: 'z-room', text: 'still there?' })).ok).toBe(true);
    await until(() => got.includes('still there?'), 5000, 'the message at the recovered socket');
  });

  test("records a stale incarnation removed under its own name come back at the next reconciliation (the pod's index still lists them)", async () => {
    // A pod paused while it recovered a session resumes after the client recovered elsewhere: it
    // finishes its recovery (its writes take the records under its name), then drops its copy and
    // removes them, exactly as a leave and a disconnect of its own would. The pod that holds the
    // socket still lists it in its own indexes.
    const prefix = uniquePrefix();
    const g = await spawn(prefix, `${prefix}-gw`);
    procs.push(g);
    const alice = await connect(g.url, { token: await token('alice') });
    expect((await alice.emitWithAck('join-room', 'stale-room')).ok).toBe(true);
    const watcher = await connect(g.url, { token: await token('walt') });
    expect(await presenceOf(watcher, 'alice')).toBe('online');
    const keys = new Keys(prefix);
    const room = keys.room('/', 'stale-room');
    const dir = path.join(__dirname, '../../services/core/redis/lua');
    const lua = (f: string) => fs.readFileSync(path.join(dir, `${f}.lua`), 'utf8');
    await r.hset(keys.presence('/', 'alice'), `s:${alice.id}`, 'stale-pod');
    await r.hset(room.sockets, alice.id!, 'alice\nstale-pod');
    await r.zadd(keys.presenceDue(), Date.now() + 300, '/\nalice');
    await r.eval(
      lua('presence-disconnect-2'),
      2,
      keys.presence('/', 'alice'),
      keys.presenceView('/', 'alice'),
      alice.id!,
      'stale-pod',
      Date.now(),
      Date.now() + 300,
    );
    await r.eval(lua('room-leave-2'), 2, room.sockets, room.users, alice.id!, 'stale-pod');
    await until(async () => (await presenceOf(watcher, 'alice')) === 'offline', 5000, 'alice shown offline (the stale removal)');
    expect(await membersOf(watcher, 'stale-room')).toEqual([]);
    // The next pass (every 30 s, and after every Redis reconnect: forced here) records them again.
    await r.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await until(async () => (await presenceOf(watcher, 'alice').catch(() => 'unknown')) === 'online', 15000, 'alice online again');
    await until(
      async () => (await membersOf(watcher, 'stale-room').catch(() => [])).some((m) => m.userId === 'alice' && m.sockets === 1),
      10000,
      'alice in the room again',
    );
    expect(alice.connected).toBe(true);
  });

  test('a disconnect during a Redis outage leaves no ghost, and a connect during it is online after it', async () => {
    const prefix = uniquePrefix();
    const g = await spawn(prefix, `${prefix}-gw`, { RECOVERY_WINDOW_MS: '120000' });
    procs.push(g);
    const leaver = await connect(g.url, { token: await token('leaver') });
    expect((await leaver.emitWithAck('join-room', 'outage-room')).ok).toBe(true);
    const stayer = await connect(g.url, { token: await token('stayer') });
    expect((await stayer.emitWithAck('join-room', 'outage-room')).ok).toBe(true);
    await redis.stop(true);
    leaver.disconnect(); // its presence and room writes fail: Redis is down
    const late = client(g.url, { token: await token('late') }, RECONNECT); // and this one's succeed nowhere
    await waitFor(late, 'connect', () => true, 10000);
    await new Promise((res) => setTimeout(res, 500));
    await redis.restart();
    await until(async () => (await stayer.emitWithAck('get-presence', ['late'])).ok === true, 20000, 'Redis back');
    await until(async () => (await presenceOf(stayer, 'leaver')) === 'offline', 10000, 'the leaver offline');
    await until(
      async () => (await membersOf(stayer, 'outage-room')).map((m) => m.userId).join() === 'stayer',
      10000,
      'the leaver out of the room',
    );
    await until(async () => (await presenceOf(stayer, 'late')) === 'online', 10000, 'the late one online');
    expect(late.connected).toBe(true);
  });
});

describe('recovery across faults (redis, gateway processes behind a proxy)', () => {
  let redis: TestRedis;
  let proxy: TcpProxy;
  const procs: GatewayProcess[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    closeClients();
    await proxy?.close();
    await Promise.allSettled(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });
  afterAll(async () => {
    await redis.stop();
  });
  const spawn = (prefix: string, name: string, env: Record<string, string> = {}) =>
    spawnService('gateway', { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, POD_NAME: name, RATE_LIMIT_EVENTS_PER_SECOND: '0', ...env });

  test.each([
    ['websocket', 10],
    ['websocket', 30],
    ['websocket', 60],
    ['websocket', 120],
    ['polling', 30],
    ['polling', 120],
  ])(
    'a gateway paused twice in a row (%s, %i ms awake in between): its clients recover elsewhere with every message, none skipped',
    async (transport, awakeMs) => {
      const prefix = uniquePrefix();
      const [paused, other] = [await spawn(prefix, `${prefix}-p`), await spawn(prefix, `${prefix}-o`)];
      procs.push(paused, other);
      proxy = await startProxy([paused.port]);
      const c = client(proxy.url, { token: await token('pat') }, { ...RECONNECT, transports: [transport as string] });
      await Promise.all([waitFor(c, 'connect'), waitFor(c, 'session')]);
      expect((await c.emitWithAck('join-room', 'pp')).ok).toBe(true);
      const localSender = await connect(paused.url, { token: await token('local-sender') });
      const remoteSender = await connect(other.url, { token: await token('remote-sender') });
      const got = new Set<string>();
      let dups = 0;
      c.on('message', (m: { id: string }) => {
        if (got.has(m.id)) dups++;
        got.add(m.id);
      });
      const acked: string[] = [];
      const send = async (s: ClientSocket, text: string) => {
        const a = await s
          .timeout(10000)
          .emitWithAck('message', { roomId: 'pp', text })
          .catch(() => null);
        if (a?.ok) acked.push(a.id);
      };
      for (let i = 0; i < 5; i++) await send(remoteSender, `before ${i}`);
      paused.proc.kill('SIGSTOP');
      // a backlog for the paused pod, larger than one read of it, and messages of its own
      // clients queued while it sleeps
      for (let i = 0; i < 300; i++) await send(remoteSender, `during ${i}`);
      const local = Promise.all([0, 1, 2].map((i) => send(localSender, `from the paused pod ${i}`)));
      // awake for a moment (it delivers some of what it has), then paused again at once; its
      // client's connection is cut meanwhile and it recovers on the other pod
      paused.proc.kill('SIGCONT');
      await new Promise((res) => setTimeout(res, awakeMs as number));
      paused.proc.kill('SIGSTOP');
      proxy.setTargets([other.port]);
      proxy.dropAll();
      await waitFor(c, 'connect', () => true, 15000);
      paused.proc.kill('SIGCONT');
      await local;
      for (let i = 0; i < 5; i++) await send(remoteSender, `after ${i}`);
      await until(() => acked.every((id) => got.has(id)), 10000, 'every acked message at the client').catch(() => undefined);
      const missing = acked.filter((id) => !got.has(id));
      if (c.recovered) expect(missing).toEqual([]);
      // a client that was not recovered was told so (a fresh session): never a silent partial recovery
      else expect(c.recovered).toBe(false);
      console.log(
        `${transport}, awake ${awakeMs} ms: recovered ${c.recovered}, ${acked.length} acked, ${missing.length} missing, ${dups} duplicates`,
      );
    },
  );

  test('a recovery interrupted (refused after the restore) can be retried: the session is still there', async () => {
    const prefix = uniquePrefix();
    const a = await spawn(prefix, `${prefix}-a`);
    const full = await spawn(prefix, `${prefix}-full`, { MAX_CONNECTIONS: '1' });
    procs.push(a, full);
    const blocker = await connect(full.url, { token: await token('blocker') }); // `full` is at its limit
    proxy = await startProxy([a.port]);
    const c = client(proxy.url, { token: await token('iris') }, { ...RECONNECT, transports: ['websocket'] });
    await Promise.all([waitFor(c, 'connect'), waitFor(c, 'session')]);
    expect((await c.emitWithAck('join-room', 'ir')).ok).toBe(true);
    const sender = await connect(a.url, { token: await token('sender') });
    const got = new Set<string>();
    c.on('message', (m: { id: string }) => got.add(m.id));
    // the connection drops; the reconnect lands on `full`, which restores and then refuses it
    proxy.setTargets([full.port]);
    const refused = waitFor<Error>(c, 'connect_error', () => true, 10000);
    proxy.dropAll();
    expect((await refused).message).toBe('overloaded');
    const missed = (await sender.emitWithAck('message', { roomId: 'ir', text: 'while refused' })).id;
    // the client tries again, on a pod that takes it: recovered, with what it missed
    blocker.disconnect();
    proxy.setTargets([a.port]);
    c.connect();
    await waitFor(c, 'connect', () => true, 10000);
    expect(c.recovered).toBe(true);
    await until(() => got.has(missed), 5000, 'the message missed while refused');
  });
});
