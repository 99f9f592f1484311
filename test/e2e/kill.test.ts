import { io } from 'socket.io-client';
import { describeLocal, useCluster } from './cluster';
import {
  ask,
  closeAll,
  connectClient,
  duplicates,
  E2EClient,
  FAST_RECONNECT,
  pct,
  pinnedClient,
  sleep,
  startTraffic,
  until,
} from './clients';
import { record, summary } from './results';

// A gateway is SIGKILLed while messages flow: its clients reconnect through the balancer to a
// survivor, recover their session (socket.recovered, rooms back) and receive every room message
// sent meanwhile exactly once; presence and room membership converge (nobody is left offline,
// no ghost socket of the dead pod). Heartbeats and the presence grace are shortened to 500 ms.

jest.setTimeout(180000);

const FAST = { HEARTBEAT_INTERVAL_MS: 500, PRESENCE_GRACE_MS: 500 };
const CLIENTS = 30;
const VICTIM = 'gateway-2';
const VICTIM_COOKIE = 'gw2';

describeLocal('SIGKILL a gateway under load', () => {
  const cluster = useCluster({ name: 'kill', gateways: 3, workers: 2, gatewayEnv: { ...FAST, SHUTDOWN_DELAY_MS: 1000 }, workerEnv: FAST });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('its clients come back recovered with every missed message once; presence and members converge', async () => {
    const c = cluster();
    const tag = Date.now().toString(36);
    const rooms = [`kill-${tag}-a`, `kill-${tag}-b`];

    // Clients through the balancer (polling first, then websocket; the RTGSRV cookie tells where they landed).
    const clients: E2EClient[] = [];
    for (let i = 0; i < CLIENTS; i++) clients.push(await connectClient(c, `kill-${tag}-u${i}`, { ...FAST_RECONNECT }));
    for (const cl of clients) for (const r of rooms) expect(await ask(cl.socket, 'join-room', r)).toMatchObject({ ok: true });
    const victims = clients.filter((cl) => cl.server() === VICTIM_COOKIE);
    const others = clients.filter((cl) => cl.server() !== VICTIM_COOKIE);
    expect(victims.length).toBeGreaterThanOrEqual(5);
    expect(victims.every((v) => v.socket.io.engine.transport.name === 'websocket')).toBe(true);

    // Senders and the observer are pinned to gateway-1: the kill must not touch them.
    const senders = await Promise.all([0, 1, 2].map((i) => pinnedClient(c, `kill-${tag}-sender${i}`, 'gw1', FAST_RECONNECT)));
    const observer = await pinnedClient(c, `kill-${tag}-observer`, 'gw3', FAST_RECONNECT);
    const sub = await ask(
      observer.socket,
      'presence:subscribe',
      clients.map((cl) => cl.userId),
    );
    expect(sub.ok).toBe(true);
    expect((sub.users as Array<{ status: string }>).every((u) => u.status === 'online')).toBe(true);
    const presenceEvents: Array<{ userId: string; status: string; at: number }> = [];
    observer.socket.on('presence', (p: { userId: string; status: string }) => presenceEvents.push({ ...p, at: Date.now() }));

    const traffic = startTraffic(senders, rooms, 25, 60000);
    await sleep(1000);
    const tKill = Date.now();
    await c.kill(VICTIM, 'SIGKILL');
    const tDead = Date.now();

    // Every victim reconnects through the balancer, to a survivor, with its session recovered.
    await until(() => victims.every((v) => v.connects.some((k) => k.at > tKill)), 30000, 'every client of the killed gateway to reconnect');
    const tAllBack = Date.now();
    await sleep(1000); // traffic keeps flowing after they are back
    await traffic.stop();
    const reconnectMs = victims.map((v) => v.connects.find((k) => k.at > tKill)!.at - tKill);
    const back = victims.map((v) => v.connects.find((k) => k.at > tKill)!);

    // Every acknowledged message reaches every client once, including those sent while the victims were away.
    const ids = traffic.acked.map((a) => a.id);
    const everyone = [...clients];
    await until(() => everyone.every((cl) => ids.every((id) => cl.counts.has(id))), 30000, 'every message at every client').catch(
      () => undefined,
    );
    // For each victim: from the kill until it had every message acked before it was back (its catch-up).
    const catchUpMs = victims.map((v) => {
      const backAt = v.connects.find((k) => k.at > tKill)!.at;
      const missed = traffic.acked.filter((a) => a.at >= tKill && a.at <= backAt);
      return Math.max(backAt, ...missed.map((m) => v.arrivedAt.get(m.id) ?? Infinity)) - tKill;
    });
    const lostPerClient = everyone.map((cl) => ids.filter((id) => !cl.counts.has(id)).length);
    const lostDetail = everyone.flatMap((cl) =>
      traffic.acked
        .filter((a) => !cl.counts.has(a.id))
        .map((a) => ({
          client: cl.userId,
          victim: victims.includes(cl),
          room: a.room,
          seq: a.seq,
          ackedMsAfterKill: a.at - tKill,
          backMsAfterKill: (cl.connects.find((k) => k.at > tKill)?.at ?? NaN) - tKill,
        })),
    );
    if (lostDetail.length) console.log('lost messages', JSON.stringify(lostDetail.slice(0, 20)));
    const duringOutage = traffic.acked.filter((a) => a.at >= tKill && a.at <= tAllBack).length;

    // Victims work after recovery: each sends one message, everyone gets it.
    const after: string[] = [];
    for (const v of victims) {
      const a = await ask(v.socket, 'message', { roomId: rooms[0], text: `${v.userId} is back` });
      expect(a).toMatchObject({ ok: true });
      after.push(a.id as string);
    }
    await until(() => clients.every((cl) => after.every((id) => cl.counts.has(id))), 15000, 'messages of the recovered clients');

    // Presence converges: every user online, and the room lists each user once with one socket (no ghost of the dead pod).
    const tP = Date.now();
    let presenceOk = false;
    let membersOk = false;
    await until(
      async () => {
        const p = await ask(
          observer.socket,
          'get-presence',
          clients.map((cl) => cl.userId),
        );
        presenceOk = p.ok && (p.users as Array<{ status: string }>).every((u) => u.status === 'online');
        const m = await ask(observer.socket, 'get-room-members', rooms[0]);
        const members = (m.members ?? []) as Array<{ userId: string; sockets: number }>;
        membersOk = m.ok && m.count === CLIENTS && members.every((x) => x.sockets === 1);
        return presenceOk && membersOk;
      },
      15000,
      'presence and room members to converge',
    ).catch(() => undefined);
    const convergeMs = Date.now() - tP;
    // the reaper has removed the dead pod from the cluster's list
    const admin = io(`${c.baseUrl}/admin`, {
      auth: { token: await c.token(`kill-${tag}-admin`, { roles: ['admin'] }) },
      transports: ['websocket'],
      forceNew: true,
    });
    let pods: string[] = [];
    await until(
      async () => {
        if (!admin.connected) return false;
        const s = await admin.timeout(5000).emitWithAck('admin:stats');
        pods = (s.pods as Array<{ id: string }>).map((p) => p.id).sort();
        return !pods.includes(VICTIM);
      },
      15000,
      'the dead gateway to be reaped',
    ).catch(() => undefined);
    admin.disconnect();

    const offlineFlaps = presenceEvents.filter((e) => e.status === 'offline').length;
    const restartMs = await c.restart(VICTIM);
    record(__filename, 'kill: SIGKILL one of 3 gateways under load', {
      clientsOnKilledGateway: victims.length,
      otherClients: others.length,
      messagesAcked: ids.length,
      messagesSentWhileVictimsAway: duringOutage,
      lost: lostPerClient.reduce((a, b) => a + b, 0),
      duplicates: duplicates([...clients, ...senders]),
      failedAcks: traffic.failed.length,
      recovered: `${back.filter((b) => b.recovered).length}/${victims.length}`,
      killToProcessGoneMs: tDead - tKill,
      reconnectMsP50: pct(reconnectMs, 50),
      reconnectMsMax: pct(reconnectMs, 100),
      allVictimsBackMs: tAllBack - tKill,
      catchUpMsP50: pct(catchUpMs, 50),
      catchUpMsMax: pct(catchUpMs, 100),
      presenceAndMembersConvergedMsAfterCheckStart: convergeMs,
      presenceOfflineFlapsSeenByObserver: offlineFlaps,
      reconnectedTo: back.reduce<Record<string, number>>((m, b) => ((m[b.server ?? '?'] = (m[b.server ?? '?'] ?? 0) + 1), m), {}),
      restartKilledGatewayMs: restartMs,
    });

    expect(traffic.failed).toEqual([]);
    expect(duringOutage).toBeGreaterThan(0);
    expect(back.every((b) => b.recovered)).toBe(true);
    expect(back.every((b) => b.server !== VICTIM_COOKIE)).toBe(true);
    expect(lostPerClient.every((n) => n === 0)).toBe(true);
    expect(duplicates([...clients, ...senders])).toBe(0);
    expect(others.every((o) => o.disconnects.length === 0)).toBe(true);
    expect([...senders, observer].every((s) => s.disconnects.length === 0)).toBe(true);
    expect(presenceOk).toBe(true);
    expect(membersOk).toBe(true);
    expect(pods).not.toContain(VICTIM);
  });
});
