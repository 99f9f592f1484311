import Redis, { Cluster } from 'ioredis';
import type { Socket as ClientSocket } from 'socket.io-client';
import { client, closeClients, connect, GatewayProcess, spawnService, token, uniquePrefix, until, waitFor } from '../helpers/cluster';
import { startRedis } from '../helpers/redis';
import { startRedisCluster } from '../helpers/redis-cluster';

/*
 * Presence across pods that never lies, with real processes: built gateways and workers
 * (`npm run build` first) on a real redis-server and on a real 3-master Redis Cluster.
 *
 * HEARTBEAT_INTERVAL_MS = 500 and PRESENCE_GRACE_MS = 500, so a dead pod's users must be
 * announced offline within 3 * 500 + 500 = 2,000 ms of its last heartbeat, hence of the kill.
 * MARGIN on top of that, measured from the kill: one reaper period (HEARTBEAT/2 = 250 ms), one
 * sweep period (GRACE/4 = 125 ms), and 625 ms for scheduling and delivery on a small shared CI
 * runner (2 cores, several test processes).
 */
const HB = 500;
const GRACE = 500;
const REAP_BOUND = 3 * HB + GRACE;
const MARGIN = 1000;

jest.setTimeout(60000);

interface Backend {
  url: string;
  cluster: boolean;
  stop(): Promise<void>;
}

const procs: GatewayProcess[] = [];

function alive(p: GatewayProcess): boolean {
  return p.proc.exitCode === null && p.proc.signalCode === null;
}

/** SIGKILLs every process a test started (resuming stopped ones first). */
async function killAll(): Promise<void> {
  const all = procs.splice(0);
  await Promise.all(
    all.map(async (p) => {
      if (!alive(p)) return;
      p.proc.kill('SIGCONT');
      await p.kill('SIGKILL');
    }),
  );
}

const counts = (xs: string[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());

describe.each([
  ['one redis-server', false],
  ['a 3-master redis cluster', true],
])('presence resilience with real processes on %s', (_name, isCluster) => {
  let backend: Backend;
  let prefix: string;
  let r: Redis | Cluster;
  /** KEYS on every master (a cluster's KEYS answers for one node). */
  const keysAll = async (pattern: string) =>
    (await Promise.all((r instanceof Cluster ? r.nodes('master') : [r]).map((n) => n.keys(pattern)))).flat();

  beforeAll(async () => {
    if (isCluster) {
      const c = await startRedisCluster();
      backend = { url: c.url, cluster: true, stop: c.stop };
    } else {
      const s = await startRedis();
      backend = { url: s.url, cluster: false, stop: () => s.stop() };
    }
    const u = new URL(backend.url);
    r = backend.cluster
      ? new Cluster([{ host: u.hostname, port: Number(u.port) }], { redisOptions: { maxRetriesPerRequest: 1 } })
      : new Redis(backend.url, { maxRetriesPerRequest: 1 });
  });
  beforeEach(() => {
    prefix = uniquePrefix();
  });
  afterEach(async () => {
    closeClients();
    await killAll();
  });
  afterAll(async () => {
    closeClients();
    await killAll();
    r?.disconnect();
    await backend?.stop();
  });

  const service = async (kind: 'gateway' | 'worker', name: string) => {
    const p = await spawnService(kind, {
      REDIS_URL: backend.url,
      REDIS_CLUSTER: String(backend.cluster),
      REDIS_KEY_PREFIX: prefix,
      POD_NAME: `${prefix}-${name}`,
      HEARTBEAT_INTERVAL_MS: String(HB),
      PRESENCE_GRACE_MS: String(GRACE),
    });
    procs.push(p);
    return p;
  };
  const deploy = (gateways: number, workers: number) =>
    Promise.all([
      ...Array.from({ length: gateways }, (_, i) => service('gateway', `gw${i}`)),
      ...Array.from({ length: workers }, (_, i) => service('worker', `wk${i}`)),
    ]).then((ps) => ({
      gw: ps.slice(0, gateways),
      wk: ps.slice(gateways),
    }));

  /** A watcher on a surviving pod: subscribed to `ids`, in `room`, recording presence and user-left with arrival times. */
  const watch = async (url: string, ids: string[], room: string) => {
    const w = await connect(url, { token: await token(`watcher-${room}`) });
    const presence: Array<{ userId: string; status: string; at: number }> = [];
    const left: Array<{ userId: string; at: number }> = [];
    w.on('presence', (e: { userId: string; status: string }) => presence.push({ userId: e.userId, status: e.status, at: Date.now() }));
    w.on('user-left', (e: { userId: string; room: string }) => e.room === room && left.push({ userId: e.userId, at: Date.now() }));
    const sub = await w.emitWithAck('presence:subscribe', ids);
    expect(sub.ok).toBe(true);
    expect((await w.emitWithAck('join-room', room)).ok).toBe(true);
    const offline = () => presence.filter((e) => e.status === 'offline');
    const online = () => presence.filter((e) => e.status === 'online');
    return { w, presence, left, offline, online };
  };

  /** Connects `ids` to `url`, each joining `room`; resolves once the watcher saw every one online. */
  const populate = async (
    url: string,
    ids: string[],
    room: string,
    watcher: { online(): unknown[] },
    opts: { reconnect?: (id: string) => boolean } = {},
  ) => {
    const socks: ClientSocket[] = [];
    for (let i = 0; i < ids.length; i += 50) {
      const batch = await Promise.all(
        ids.slice(i, i + 50).map(async (id) => {
          const auth = { token: await token(id) };
          if (!opts.reconnect?.(id)) return connect(url, auth);
          // a live client: reconnects by itself (short delays to keep the test fast)
          const s = client(url, auth, { reconnectionDelay: 200, reconnectionDelayMax: 400 });
          await waitFor(s, 'connect', () => true, 10000);
          return s;
        }),
      );
      await Promise.all(batch.map(async (s) => expect((await s.emitWithAck('join-room', room)).ok).toBe(true)));
      socks.push(...batch);
    }
    await until(() => watcher.online().length === ids.length, 15000, `${ids.length} users online`);
    return socks;
  };

  const members = async (w: ClientSocket, room: string) => {
    const m = await w.emitWithAck('get-room-members', room);
    expect(m.ok).toBe(true);
    return m as { count: number; members: Array<{ userId: string; sockets: number }> };
  };

  /** The worker's online-users gauge (from the per-namespace counts it scans on every master). */
  const onlineGauge = async (worker: GatewayProcess) => {
    const res = await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`);
    const m = /^realtime_presence_online_users (\S+)$/m.exec(await res.text());
    return m ? Number(m[1]) : NaN;
  };

  test('SIGKILL of a gateway holding 20 users: each gets one offline within 3 heartbeats + grace (+ margin) and one user-left; rooms drop them', async () => {
    const { gw, wk } = await deploy(3, 1);
    const ids = Array.from({ length: 20 }, (_, i) => `k${i}`);
    const watcher = await watch(gw[0].url, ids, 'doomed');
    const stay = await connect(gw[1].url, { token: await token('stayer') });
    await stay.emitWithAck('join-room', 'doomed');
    await populate(gw[2].url, ids, 'doomed', watcher);
    expect((await members(watcher.w, 'doomed')).count).toBe(22);
    await until(async () => (await onlineGauge(wk[0])) === 22, 5000, 'worker counts 22 users online');

    const t0 = Date.now();
    await gw[2].kill('SIGKILL');
    await until(() => watcher.offline().length >= ids.length, REAP_BOUND + MARGIN + 5000, 'every offline');
    const worst = Math.max(...watcher.offline().map((e) => e.at - t0));
    await until(() => watcher.left.length >= ids.length, 5000, 'every user-left');
    // duplicates would come from a later sweep or reaper pass: give them a few periods to show
    await new Promise((res) => setTimeout(res, 2 * HB));

    console.log(
      `[${_name}] SIGKILL gateway: offline ${Math.min(...watcher.offline().map((e) => e.at - t0))}-${worst} ms after the kill; user-left ${Math.min(...watcher.left.map((e) => e.at - t0))}-${Math.max(...watcher.left.map((e) => e.at - t0))} ms`,
    );
    expect(worst).toBeLessThanOrEqual(REAP_BOUND + MARGIN);
    expect([...counts(watcher.offline().map((e) => e.userId))].sort()).toEqual(ids.map((id) => [id, 1]).sort());
    expect(watcher.online()).toHaveLength(ids.length);
    expect([...counts(watcher.left.map((e) => e.userId))].sort()).toEqual(ids.map((id) => [id, 1]).sort());
    const m = await members(watcher.w, 'doomed');
    expect(m.count).toBe(2);
    expect(m.members.map((x) => x.userId).sort()).toEqual(['stayer', 'watcher-doomed']);
    const p = await watcher.w.emitWithAck('get-presence', [...ids, 'stayer']);
    expect(p.users.filter((u: any) => u.status === 'online').map((u: any) => u.userId)).toEqual(['stayer']);
    // the dead pod's socket index is gone, and so is its heartbeat entry
    for (const k of await keysAll(`${prefix}:pod:{${prefix}-gw2.*}:sockets`)) expect(await r.hlen(k)).toBe(0);
    // (the registry holds incarnations, `<POD_NAME>.<start id>`)
    await until(async () => !(await r.hkeys(`${prefix}:pods`)).some((k) => k.startsWith(`${prefix}-gw2.`)), 5000, 'dead pod forgotten');
    await until(async () => (await onlineGauge(wk[0])) === 2, 5000, 'worker counts 2 users online');
  });

  test('SIGSTOP of a gateway past the reap time, then SIGCONT: no ghost comes back; its clients are closed and live ones reconnect truthfully', async () => {
    const { gw } = await deploy(2, 1);
    const live = Array.from({ length: 5 }, (_, i) => `live${i}`);
    const gone = Array.from({ length: 5 }, (_, i) => `gone${i}`);
    const ids = [...live, ...gone];
    const watcher = await watch(gw[0].url, ids, 'paused');
    const socks = await populate(gw[1].url, ids, 'paused', watcher, { reconnect: (id) => id.startsWith('live') });
    const byId = new Map(ids.map((id, i) => [id, socks[i]]));
    expect((await members(watcher.w, 'paused')).count).toBe(11);

    const t0 = Date.now();
    gw[1].proc.kill('SIGSTOP');
    // Paused, the pod is silent: after 3 heartbeats it is reaped and its users go offline. The
    // clients notice nothing (the kernel keeps their TCP connections; socket.io-client would only
    // time out after pingInterval + pingTimeout = 45 s).
    await until(() => watcher.offline().length >= ids.length, REAP_BOUND + MARGIN + 5000, 'every offline while paused');
    const worst = Math.max(...watcher.offline().map((e) => e.at - t0));
    await until(() => watcher.left.length >= ids.length, 5000, 'every user-left while paused');
    expect(worst).toBeLessThanOrEqual(REAP_BOUND + MARGIN);
    expect((await members(watcher.w, 'paused')).members).toEqual([{ userId: 'watcher-paused', sockets: 1 }]);
    expect(socks.every((s) => s.connected)).toBe(true);
    await until(async () => !(await r.hkeys(`${prefix}:pods`)).some((k) => k.startsWith(`${prefix}-gw1.`)), 5000, 'paused pod forgotten');

    const closed = gone.map((id) => waitFor(byId.get(id)!, 'disconnect', () => true, 10000));
    const reconnected = live.map((id) => waitFor(byId.get(id)!, 'connect', () => true, 15000));
    const t1 = Date.now();
    gw[1].proc.kill('SIGCONT');
    // The resumed pod's first heartbeat learns it was reaped and closes every client of its own.
    const reasons = await Promise.all(closed);
    const closedAfter = Date.now() - t1;
    expect(reasons.every((x) => x === 'transport close')).toBe(true);
    await Promise.all(reconnected);
    const reconnectedAfter = Date.now() - t1;

    console.log(
      `[${_name}] SIGSTOP gateway: offline ${worst} ms after the stop (worst); after SIGCONT clients closed in ${closedAfter} ms, live ones reconnected in ${reconnectedAfter} ms`,
    );

    // live users come back online through their real reconnect; the others stay offline
    await until(() => watcher.online().length >= ids.length + live.length, 10000, 'live users online again');
    await until(async () => (await members(watcher.w, 'paused')).count === 1 + live.length, 10000, 'live users back in the room');
    await new Promise((res) => setTimeout(res, 2 * HB + GRACE)); // a ghost would be announced by now
    const seq = (id: string) => watcher.presence.filter((e) => e.userId === id).map((e) => e.status);
    for (const id of live) expect(seq(id)).toEqual(['online', 'offline', 'online']);
    for (const id of gone) expect(seq(id)).toEqual(['online', 'offline']);
    const p = await watcher.w.emitWithAck('get-presence', ids);
    expect(p.users.map((u: any) => [u.userId, u.status])).toEqual(ids.map((id) => [id, id.startsWith('live') ? 'online' : 'offline']));
    const m = await members(watcher.w, 'paused');
    expect(m.members.sort((a, b) => a.userId.localeCompare(b.userId))).toEqual(
      [...live.map((userId) => ({ userId, sockets: 1 })), { userId: 'watcher-paused', sockets: 1 }].sort((a, b) =>
        a.userId.localeCompare(b.userId),
      ),
    );
    // the resumed pod indexes only the sockets it really holds
    // (pods register under their incarnation, `<POD_NAME>.<start id>`)
    const [podKey] = await keysAll(`${prefix}:pod:{${prefix}-gw1.*}:sockets`);
    const held = podKey ? await r.hgetall(podKey) : {};
    expect(Object.values(held).sort()).toEqual([...live].sort());
    expect(gone.every((id) => !byId.get(id)!.connected)).toBe(true);
    expect(live.every((id) => byId.get(id)!.connected)).toBe(true);
  });

  test.each([
    ['on the first user-left (mid room reap)', 'left'],
    ['on the first offline (mid sweep)', 'offline'],
  ])(
    'worker SIGKILLed during the reap of 200 users %s and restarted: every user gets exactly one offline and one user-left',
    async (_when, trigger) => {
      const { gw, wk } = await deploy(2, 1);
      const ids = Array.from({ length: 200 }, (_, i) => `m${i}`);
      const watcher = await watch(gw[0].url, ids, 'crowd');
      await populate(gw[1].url, ids, 'crowd', watcher);

      const t0 = Date.now();
      await gw[1].kill('SIGKILL');
      await until(
        () => (trigger === 'left' ? watcher.left.length > 0 : watcher.offline().length > 0),
        REAP_BOUND + MARGIN + 5000,
        `first ${trigger}`,
      );
      await wk[0].kill('SIGKILL');
      const killedAt = Date.now() - t0;
      const progress = { offline: watcher.offline().length, left: watcher.left.length };
      const next = await service('worker', 'wk-next');
      const restartedAt = Date.now() - t0;
      // on a timeout, the assertion below names the users missed
      await until(
        () => watcher.offline().length >= ids.length && watcher.left.length >= ids.length,
        20000,
        'every offline and user-left',
      ).catch(() => undefined);
      const done = Date.now() - t0;
      await new Promise((res) => setTimeout(res, 2 * HB + GRACE)); // duplicates would show by now

      const span = (xs: Array<{ at: number }>) => `${Math.min(...xs.map((e) => e.at - t0))}-${Math.max(...xs.map((e) => e.at - t0))} ms`;
      console.log(
        `[${_name}] worker killed ${killedAt} ms after the gateway (offline ${progress.offline}/200, user-left ${progress.left}/200 announced), new worker up at ${restartedAt} ms, all announced at ${done} ms; user-left ${span(watcher.left)}, offline ${span(watcher.offline())} after the gateway kill`,
      );
      const off = counts(watcher.offline().map((e) => e.userId));
      const missedOff = ids.filter((id) => !off.has(id));
      const twiceOff = [...off].filter(([, n]) => n > 1).map(([id]) => id);
      const lft = counts(watcher.left.map((e) => e.userId));
      const twiceLeft = [...lft].filter(([, n]) => n > 1).map(([id]) => id);
      expect({ missedOff, twiceOff, twiceLeft, missedLeft: ids.filter((id) => !lft.has(id)) }).toEqual({
        missedOff: [],
        twiceOff: [],
        twiceLeft: [],
        missedLeft: [],
      });
      expect((await members(watcher.w, 'crowd')).members).toEqual([{ userId: 'watcher-crowd', sockets: 1 }]);
      const p = await watcher.w.emitWithAck('get-presence', ids);
      expect(p.users.every((u: any) => u.status === 'offline')).toBe(true);
      for (const k of await keysAll(`${prefix}:pod:{${prefix}-gw1.*}:sockets`)) expect(await r.hlen(k)).toBe(0);
      expect(alive(next)).toBe(true);
    },
  );
});
