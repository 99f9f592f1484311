import fs from 'fs';
import Redis from 'ioredis';
import { io as ioc, Socket } from 'socket.io-client';
import { describeLocal, useCluster } from './cluster';
import { ask, closeAll, connectClient, E2EClient, sleep, until } from './clients';
import { record, summary } from './results';

// An attacker against the local cluster for 30 s, doing at once what issue #12 found unbounded:
// CONNECTs to random workspace namespaces without a token (1), floods of big messages to many
// rooms and reconnects from an old offset (3), thousands of rooms and presence subscriptions on
// one socket (4), direct messages to user ids nobody owns (5). Meanwhile probe clients exchange
// acknowledged messages: none is lost, every pod stays alive, and after a settle each pod's RSS
// is back within 50 MB of where it started; Redis grows by a bounded amount (the figure is
// recorded).

jest.setTimeout(240000);

const ATTACK_MS = 30000;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describeLocal('an attacker against the cluster', () => {
  const cluster = useCluster({ name: 'attack', gateways: 3, workers: 1 });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('probes lose nothing, pods stay alive, memory comes back, Redis grows by a bounded amount', async () => {
    const c = cluster();
    const tag = Date.now().toString(36);
    const redis = new Redis(c.redisUrl!);
    const usedMb = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]) / 1e6;
    const pids = c.pids();
    const gwPids = c.gateways.map((g) => pids[g]);
    const rss0 = gwPids.map(rssMb);
    const redis0 = await usedMb();

    // probes: two users in a room exchanging acked messages through the balancer
    const probes: E2EClient[] = [];
    for (let i = 0; i < 4; i++) probes.push(await connectClient(c, `probe-${tag}-${i}`));
    for (const p of probes) expect(await ask(p.socket, 'join-room', `probe-${tag}`)).toMatchObject({ ok: true });
    const acked: string[] = [];
    let probing = true;
    const probeLoop = (async () => {
      for (let i = 0; probing; i++) {
        const a = await ask(probes[i % probes.length].socket, 'message', { roomId: `probe-${tag}`, text: `probe ${i}` });
        if (a.ok) acked.push(a.id as string);
        await sleep(100);
      }
    })();

    const end = Date.now() + ATTACK_MS;
    const stats = {
      workspaceRefused: 0,
      floodRefused: 0,
      floodAccepted: 0,
      roomsRefused: 0,
      presenceRefused: 0,
      ghostRefused: 0,
      replays: 0,
    };
    const attackers: Socket[] = [];
    const attacker = async (name: string) => {
      const s = ioc(c.baseUrl, { auth: { token: await c.token(name) }, transports: ['websocket'], forceNew: true, reconnection: false });
      attackers.push(s);
      await new Promise<void>((res, rej) => (s.once('connect', () => res()), s.once('connect_error', rej)));
      return s;
    };
    // (1) workspace CONNECTs without a token, many per connection
    const noToken = (async () => {
      while (Date.now() < end) {
        const s = ioc(c.baseUrl, { transports: ['websocket'], forceNew: true, reconnection: false, autoConnect: false });
        attackers.push(s);
        await new Promise<void>((res) => s.io.open(() => res()));
        const subs = Array.from({ length: 500 }, () => s.io.socket(`/workspace-${Math.random().toString(36).slice(2)}`, { auth: {} }));
        let refused = 0;
        for (const sub of subs) sub.once('connect_error', () => refused++);
        for (const sub of subs) sub.connect();
        await until(() => refused === subs.length, 20000, 'refusals').catch(() => undefined);
        stats.workspaceRefused += refused;
        s.io.engine.close();
      }
    })();
    // (3) 15 KB messages to 16 rooms as fast as acks come, and a reconnect from an old offset
    const flooder = (async () => {
      const s = await attacker(`flood-${tag}`);
      const rooms = Array.from({ length: 16 }, (_, i) => `empty-${tag}-${i}`);
      const text = 'x'.repeat(15000);
      const first = { pid: (s as unknown as { _pid?: string })._pid, offset: (s as unknown as { _lastOffset?: string })._lastOffset };
      while (Date.now() < end) {
        const a = await s
          .timeout(5000)
          .emitWithAck('message', { roomIds: rooms, text })
          .catch(() => null);
        if (a?.ok) stats.floodAccepted++;
        else stats.floodRefused++;
        if (stats.floodAccepted + stats.floodRefused === 200 && first.pid) {
          // a fresh client presenting an offset from before the flood: bounded, not a pod killer
          const r = ioc(c.baseUrl, {
            auth: { token: await c.token(`flood-${tag}`), pid: first.pid, offset: first.offset ?? '0' },
            transports: ['websocket'],
            forceNew: true,
            reconnection: false,
          });
          attackers.push(r);
          await new Promise<void>((res) => (r.once('connect', () => res()), r.once('connect_error', () => res())));
          stats.replays++;
        }
      }
    })();
    // (4) rooms and presence subscriptions without bound
    const hoarder = (async () => {
      const s = await attacker(`hoard-${tag}`);
      for (let i = 0; i < 1000 && Date.now() < end; i++) {
        const a = await s
          .timeout(5000)
          .emitWithAck('join-room', `hoard-${tag}-${i}`)
          .catch(() => null);
        if (a && !a.ok && a.error.code === 'limit_exceeded') stats.roomsRefused++;
      }
      for (let k = 0; k < 300 && Date.now() < end; k++) {
        const ids = Array.from({ length: 1000 }, (_, i) => `u${k}-${i}`);
        const a = await s
          .timeout(5000)
          .emitWithAck('presence:subscribe', ids)
          .catch(() => null);
        if (a && !a.ok && a.error.code === 'limit_exceeded') stats.presenceRefused++;
      }
    })();
    // (5) direct messages to user ids nobody owns
    const ghostWriter = (async () => {
      const s = await attacker(`ghosts-${tag}`);
      const text = 'y'.repeat(15000);
      for (let i = 0; Date.now() < end; i++) {
        const a = await s
          .timeout(5000)
          .emitWithAck('direct-message', { toUserId: `ghost-${tag}-${i}`, text })
          .catch(() => null);
        if (a && !a.ok && a.error.code === 'not_found') stats.ghostRefused++;
      }
    })();
    await Promise.all([noToken, flooder, hoarder, ghostWriter]);
    probing = false;
    await probeLoop;
    for (const s of attackers) s.disconnect();

    // settle: every probe message arrived once at every probe; the pods drop what the attack cost
    await until(() => probes.every((p) => acked.every((id) => p.counts.has(id))), 20000, 'every probe message at every probe').catch(
      () => undefined,
    );
    const lost = probes.reduce((n, p) => n + acked.filter((id) => !p.counts.has(id)).length, 0);
    let rss1 = gwPids.map(rssMb);
    const settleEnd = Date.now() + 30000;
    while (Date.now() < settleEnd && rss1.some((r, i) => r - rss0[i] > 50)) {
      await sleep(1000);
      rss1 = gwPids.map(rssMb);
    }
    const redis1 = await usedMb();
    redis.disconnect();
    const alive = c.gateways.every((g) => c.alive(g) && c.pids()[g] === pids[g]);
    record(__filename, 'attack: items 1, 3, 4, 5 of issue #12 at once for 30 s', {
      ...stats,
      probeMessagesAcked: acked.length,
      probeMessagesLost: lost,
      gatewaysAliveSamePids: alive,
      gatewayRssStartMb: rss0.map((x) => Math.round(x)),
      gatewayRssAfterSettleMb: rss1.map((x) => Math.round(x)),
      redisUsedMbBefore: Math.round(redis0),
      redisUsedMbAfter: Math.round(redis1),
    });
    expect(acked.length).toBeGreaterThan(100);
    expect(lost).toBe(0);
    expect(alive).toBe(true);
    for (let i = 0; i < rss0.length; i++) expect(rss1[i] - rss0[i]).toBeLessThan(50);
    expect(stats.workspaceRefused).toBeGreaterThan(3000);
    expect(stats.floodRefused).toBeGreaterThan(0);
    expect(stats.roomsRefused).toBeGreaterThan(0);
    expect(stats.presenceRefused).toBeGreaterThan(0);
    expect(stats.ghostRefused).toBeGreaterThan(0);
    // what one flooding socket could make Redis keep: its write budget over the attack (~2 MB), plus histories
    expect(redis1 - redis0).toBeLessThan(64);
  });
});
