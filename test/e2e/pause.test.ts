import { describeLocal, useCluster, waitReady } from './cluster';
import { ask, closeAll, connectClient, duplicates, E2EClient, FAST_RECONNECT, pinnedClient, sleep, startTraffic, until } from './clients';
import { record, summary } from './results';

// A gateway is paused (SIGSTOP) longer than the reap time (3 heartbeats), then resumed (SIGCONT).
// While it is paused the cluster declares its users offline and removes its room memberships;
// two of its users leave for good meanwhile. Once it resumes it learns it was reaped and moves
// its clients, which recover elsewhere. No ghosts afterwards: presence and get-room-members tell
// the truth (the users who left are offline and gone from the room, everyone else is online and
// listed once with one socket), and it stays that way.

jest.setTimeout(180000);

const FAST = { HEARTBEAT_INTERVAL_MS: 500, PRESENCE_GRACE_MS: 500 };
const CLIENTS = 15;
const PAUSED = 'gateway-1';
const PAUSED_COOKIE = 'gw1';
const PAUSE_MS = 4000; // reap after 3 x 500 ms without a heartbeat, then the 500 ms grace

describeLocal('a gateway paused past the reap time, then resumed', () => {
  const cluster = useCluster({ name: 'pause', gateways: 3, workers: 2, gatewayEnv: FAST, workerEnv: FAST });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('no ghosts: presence and room members are truthful afterwards', async () => {
    const c = cluster();
    const tag = Date.now().toString(36);
    const room = `pause-${tag}`;
    const clients: E2EClient[] = [];
    for (let i = 0; i < CLIENTS; i++) clients.push(await connectClient(c, `pause-${tag}-u${i}`, { ...FAST_RECONNECT }));
    for (const cl of clients) expect(await ask(cl.socket, 'join-room', room)).toMatchObject({ ok: true });
    const victims = clients.filter((cl) => cl.server() === PAUSED_COOKIE);
    expect(victims.length).toBeGreaterThanOrEqual(4);
    const leavers = victims.slice(0, 2);
    const stayers = clients.filter((cl) => !leavers.includes(cl));
    const victimsStaying = victims.filter((v) => !leavers.includes(v));

    const observer = await pinnedClient(c, `pause-${tag}-observer`, 'gw2', FAST_RECONNECT);
    const senders = await Promise.all([0, 1].map((i) => pinnedClient(c, `pause-${tag}-sender${i}`, 'gw3', FAST_RECONNECT)));
    const users = clients.map((cl) => cl.userId);
    expect(await ask(observer.socket, 'presence:subscribe', users)).toMatchObject({ ok: true });
    const events: Array<{ userId: string; status: string; at: number }> = [];
    observer.socket.on('presence', (p: { userId: string; status: string }) => events.push({ ...p, at: Date.now() }));
    const traffic = startTraffic(senders, [room], 50, 60000);
    await sleep(500);

    const tStop = Date.now();
    await c.kill(PAUSED, 'SIGSTOP');
    // The cluster gives the silent pod up: its users go offline, its memberships go.
    await until(
      () => victims.every((v) => events.some((e) => e.userId === v.userId && e.status === 'offline' && e.at > tStop)),
      15000,
      'the paused pod users to be announced offline',
    );
    const offlineMs = Date.now() - tStop;
    const during = await ask(observer.socket, 'get-room-members', room);
    expect(during).toMatchObject({ ok: true, count: CLIENTS - victims.length });
    // Two of its users leave for good while it is paused.
    for (const l of leavers) l.close();
    await sleep(Math.max(0, PAUSE_MS - (Date.now() - tStop)));

    const tCont = Date.now();
    await c.kill(PAUSED, 'SIGCONT');
    // It learns it was reaped and moves its clients: they recover (on any pod).
    await until(() => victimsStaying.every((v) => v.connects.some((k) => k.at > tCont)), 20000, 'the paused pod clients to come back');
    const backMs = Date.now() - tCont;
    await sleep(1000);
    await traffic.stop();

    // Truthful presence and membership, then still truthful a while later (no late ghost).
    const check = async () => {
      const p = await ask(observer.socket, 'get-presence', users);
      const m = await ask(observer.socket, 'get-room-members', room);
      const status = new Map((p.users as Array<{ userId: string; status: string }>).map((u) => [u.userId, u.status]));
      const members = (m.members ?? []) as Array<{ userId: string; sockets: number }>;
      return {
        presenceOk: stayers.every((s) => status.get(s.userId) === 'online') && leavers.every((l) => status.get(l.userId) === 'offline'),
        membersOk:
          m.count === stayers.length &&
          members.every((x) => x.sockets === 1) &&
          !members.some((x) => leavers.some((l) => l.userId === x.userId)),
        members,
        status: Object.fromEntries(status),
      };
    };
    const tCheck = Date.now();
    let state = await check();
    await until(async () => (state = await check()).presenceOk && state.membersOk, 15000, 'presence and members to be truthful').catch(
      () => undefined,
    );
    const convergedMs = Date.now() - tCheck;
    const first = state;
    await sleep(2000); // more than heartbeats, the reap time and the grace period
    const later = await check();

    const ids = traffic.acked.map((a) => a.id);
    await until(() => stayers.every((cl) => ids.every((id) => cl.counts.has(id))), 20000, 'every message at every staying client').catch(
      () => undefined,
    );
    const lost = stayers.reduce((n, cl) => n + ids.filter((id) => !cl.counts.has(id)).length, 0);
    const leaverOnlineAgain = events.filter((e) => leavers.some((l) => l.userId === e.userId) && e.status === 'online' && e.at > tStop);
    const backRecovered = victimsStaying.map((v) => v.connects.find((k) => k.at > tCont)!.recovered);

    record(__filename, 'pause: SIGSTOP a gateway 4 s (reap time 1.5 s), then SIGCONT', {
      clientsOnPausedGateway: victims.length,
      leftWhilePaused: leavers.length,
      pauseMs: tCont - tStop,
      offlineAnnouncedMsAfterStop: offlineMs,
      clientsBackMsAfterCont: backMs,
      recovered: `${backRecovered.filter(Boolean).length}/${victimsStaying.length}`,
      truthfulMsAfterClientsBack: convergedMs,
      stillTruthful2sLater: later.presenceOk && later.membersOk,
      ghostOnlineEventsForLeavers: leaverOnlineAgain.length,
      roomMessagesAcked: ids.length,
      lost,
      duplicates: duplicates(stayers),
      failedAcks: traffic.failed.length,
    });

    expect(first.presenceOk ? 'presence ok' : first.status).toBe('presence ok');
    expect(first.membersOk ? 'members ok' : first.members).toBe('members ok');
    expect(later.presenceOk && later.membersOk).toBe(true);
    expect(leaverOnlineAgain).toEqual([]);
    expect(backRecovered.every(Boolean)).toBe(true);
    expect(lost).toBe(0);
    expect(duplicates(stayers)).toBe(0);
    expect(traffic.failed).toEqual([]);
    expect(c.alive(PAUSED)).toBe(true);
    await waitReady(c.gatewayUrl(PAUSED));
  });
});
