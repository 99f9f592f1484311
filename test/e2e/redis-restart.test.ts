import { describeLocal, httpGet, useCluster } from './cluster';
import { ask, closeAll, connectClient, E2EClient, FAST_RECONNECT, publish, sleep, startTraffic, until } from './clients';
import { record, summary } from './results';

// Redis is SIGKILLed while messages flow and started again on the same AOF directory: the
// gateways and workers notice (readiness fails, acks answer `unavailable`), reconnect by
// themselves and resume; every direct message acknowledged before the kill is still in the
// recipient's inbox and replayed in `queued-messages` when they connect afterwards, and every
// backend publish to that user accepted (202) before the kill is delivered to it too.

jest.setTimeout(180000);

const CLIENTS = 9;
const DIRECT = 60;
const PUBLISHES = 20;

describeLocal('Redis restarted under load', () => {
  const cluster = useCluster({ name: 'redis-restart', gateways: 3, workers: 2 });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('the service resumes by itself and inboxes are intact', async () => {
    const c = cluster();
    const tag = Date.now().toString(36);
    const room = `redis-${tag}`;
    const offline = `redis-${tag}-offline`;

    const clients: E2EClient[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const cl = await connectClient(c, `redis-${tag}-u${i}`, {
        ...FAST_RECONNECT,
        transports: i % 3 === 2 ? ['polling'] : ['polling', 'websocket'],
      });
      // Like the demo page: a session that could not be recovered joins its rooms again.
      cl.socket.on('connect', () => void (!cl.socket.recovered && ask(cl.socket, 'join-room', room)));
      clients.push(cl);
    }
    for (const cl of clients) expect(await ask(cl.socket, 'join-room', room)).toMatchObject({ ok: true });
    const [dmSender, ...rest] = clients;
    const traffic = startTraffic(rest.slice(0, 3), [room], 40, 120000);

    // Direct messages to a user who is not connected (but connected once: to a user nobody ever
    // saw a direct message answers not_found), and backend publishes to them, all acknowledged before the kill.
    const once = await connectClient(c, offline);
    once.socket.disconnect();
    const dmIds: string[] = [];
    for (let i = 0; i < DIRECT; i++) {
      const a = await ask(dmSender.socket, 'direct-message', { toUserId: offline, text: `dm ${i}`, data: { i } });
      expect(a).toMatchObject({ ok: true });
      dmIds.push(a.id as string);
    }
    const pubIds: string[] = [];
    for (let i = 0; i < PUBLISHES; i++) {
      const id = `redis-${tag}-pub-${i}`;
      const r = await publish(c, { userId: offline, event: 'notice', data: { i }, id });
      expect(r.status).toBe(202);
      pubIds.push(id);
    }

    await sleep(500);
    const tKill = Date.now();
    await c.kill('redis', 'SIGKILL');
    // Readiness fails on every gateway; acks answer `unavailable` meanwhile.
    let unreadyMs = NaN;
    await until(
      async () => {
        const s = await Promise.all(c.gateways.map((g) => httpGet(`${c.gatewayUrl(g)}/readyz`, 2000)));
        return s.every((x) => x.status === 503);
      },
      15000,
      'every gateway to turn unready',
    ).then(() => (unreadyMs = Date.now() - tKill));
    const duringOutage = await ask(dmSender.socket, 'direct-message', { toUserId: offline, text: 'while Redis is down' });
    await sleep(2000);

    const tStart = Date.now();
    const redisStartMs = await c.restart('redis');
    await until(
      async () => {
        const s = await Promise.all([
          ...c.gateways.map((g) => httpGet(`${c.gatewayUrl(g)}/readyz`, 2000)),
          ...Object.values(c.metricsUrls.workers).map((u) => httpGet(u.replace('/metrics', '/readyz'), 2000)),
        ]);
        return s.every((x) => x.status === 200);
      },
      30000,
      'every gateway and worker to be ready again',
    );
    const readyAgainMs = Date.now() - tStart;
    // Every client is back (recovered, or joined again) and room traffic flows again.
    await until(() => clients.every((cl) => cl.socket.connected), 30000, 'every client to be connected');
    let firstAckMs = NaN;
    await until(
      async () => {
        const a = await ask(dmSender.socket, 'message', { roomId: room, text: 'after the restart' });
        if (a.ok) firstAckMs = Date.now() - tStart;
        return a.ok;
      },
      30000,
      'a message to be acknowledged again',
    );
    await sleep(1500);
    await traffic.stop();
    const after = traffic.acked.filter((a) => a.at > tStart + readyAgainMs);
    await until(
      () => clients.every((cl) => after.every((a) => cl.counts.has(a.id))),
      20000,
      'messages after the restart at every client',
    ).catch(() => undefined);
    const lostAfter = clients.reduce((n, cl) => n + after.filter((a) => !cl.counts.has(a.id)).length, 0);
    if (lostAfter)
      console.log(
        'room messages lost after the restart, by client',
        JSON.stringify(
          clients.map((cl, i) => ({
            i,
            transport: cl.socket.io.engine?.transport?.name,
            lost: after.filter((a) => !cl.counts.has(a.id)).length,
            connects: cl.connects,
            disconnects: cl.disconnects,
          })),
        ),
      );
    const beforeKill = traffic.acked.filter((a) => a.at < tKill);
    const lostBefore = clients.reduce((n, cl) => n + beforeKill.filter((a) => !cl.counts.has(a.id)).length, 0);

    // The offline user connects: every acknowledged direct message and publish is replayed, oldest first.
    const recipient = await connectClient(c, offline, { transports: ['websocket'] });
    const queued: Array<{ id: string; publishId?: string; from?: string; event?: string; data?: { i?: number } }> = [];
    let more = true;
    recipient.socket.on('queued-messages', (b: { messages: typeof queued; more: boolean }) => {
      queued.push(...b.messages);
      more = b.more;
    });
    const wanted = [...dmIds, ...pubIds];
    const key = (q: (typeof queued)[number]) => q.publishId ?? q.id;
    await until(() => !more && wanted.every((id) => queued.some((q) => key(q) === id)), 20000, 'the inbox replay').catch(() => undefined);
    const replayedIds = new Set(queued.map(key));
    const missingDm = dmIds.filter((id) => !replayedIds.has(id));
    const missingPub = pubIds.filter((id) => !replayedIds.has(id));
    const dmOrder = queued.filter((q) => dmIds.includes(q.id)).map((q) => dmIds.indexOf(q.id));

    record(__filename, 'redis: SIGKILL Redis under load, start it again on its AOF', {
      directMessagesAckedBeforeKill: dmIds.length,
      directMessagesReplayed: dmIds.length - missingDm.length,
      publishesAcceptedBeforeKill: pubIds.length,
      publishesReplayed: pubIds.length - missingPub.length,
      inboxDuplicates: queued.length - replayedIds.size,
      ackDuringOutage: duringOutage.ok ? 'ok' : duringOutage.error?.code,
      gatewaysUnreadyMsAfterKill: unreadyMs,
      outageMs: tStart - tKill,
      redisStartMs,
      everythingReadyMsAfterRedisStart: readyAgainMs,
      firstRoomMessageAckedMsAfterRedisStart: firstAckMs,
      roomMessagesAckedBeforeKill: beforeKill.length,
      roomMessagesAckedBeforeKillLost: lostBefore,
      roomMessagesAfterRecovery: after.length,
      roomMessagesAfterRecoveryLost: lostAfter,
      acksFailedDuringOutage: traffic.failed.length,
      clientDisconnects: clients.reduce((n, cl) => n + cl.disconnects.length, 0),
      recoveredReconnects: clients.reduce((n, cl) => n + cl.connects.slice(1).filter((k) => k.recovered).length, 0),
      notRecoveredReconnects: clients.reduce((n, cl) => n + cl.connects.slice(1).filter((k) => !k.recovered).length, 0),
    });

    expect(duringOutage).toMatchObject({ ok: false, error: { code: 'unavailable' } });
    expect(missingDm).toEqual([]);
    expect(missingPub).toEqual([]);
    expect(dmOrder).toEqual([...dmOrder].sort((a, b) => a - b));
    expect(after.length).toBeGreaterThan(10);
    expect(lostAfter).toBe(0);
    expect(traffic.failed.every((f) => /unavailable|client/.test(f.error))).toBe(true);
    for (const name of Object.keys(c.pids())) expect(c.alive(name)).toBe(true);
  });
});
