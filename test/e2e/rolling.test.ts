import { describeLocal, useCluster, waitReady } from './cluster';
import { ask, closeAll, connectClient, duplicates, E2EClient, FAST_RECONNECT, pct, publish, sleep, startTraffic, until } from './clients';
import { record, summary } from './results';

// Rolling restart: SIGTERM each gateway in turn (readiness fails, HAProxy's health check takes it
// out, sockets are told to reconnect and recover elsewhere), start it again, wait for its
// readiness, then the next one. Meanwhile clients send room messages and a backend publishes
// through the balancer: zero messages lost, none duplicated, no client sees an error (no
// connect_error, no failed ack, no failed publish).
//
// SHUTDOWN_DELAY_MS=1500: HAProxy checks /readyz every 500 ms and takes a server out after 2
// failures, so it notices within ~1 s; the delay covers that with a margin, so the gateway stops
// accepting connections only once the balancer no longer sends it any.

jest.setTimeout(240000);

const SHUTDOWN_DELAY_MS = 1500;
const CLIENTS = 24;
const POLLING_CLIENTS = 6;

describeLocal('rolling restart of every gateway behind the balancer', () => {
  const cluster = useCluster({ name: 'rolling', gateways: 3, workers: 2, gatewayEnv: { SHUTDOWN_DELAY_MS, DRAIN_TIMEOUT_MS: 5000 } });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('zero messages lost, no client error, every client recovered', async () => {
    const c = cluster();
    const tag = Date.now().toString(36);
    const rooms = [`roll-${tag}-a`, `roll-${tag}-b`];

    // The senders use socket.io-client's at-least-once emits (`retries`): an event sent while the
    // pod closes the connection is sent again after the reconnect. The pod closes a connection only
    // once it answered the events it got, so a retry is never a duplicate (checked below by seq).
    const SENDER = { ...FAST_RECONNECT, retries: 5, ackTimeout: 10000 };
    const clients: E2EClient[] = [];
    for (let i = 0; i < CLIENTS; i++) clients.push(await connectClient(c, `roll-${tag}-u${i}`, i < 3 ? SENDER : FAST_RECONNECT));
    for (let i = 0; i < POLLING_CLIENTS; i++)
      clients.push(await connectClient(c, `roll-${tag}-p${i}`, { ...(i === 0 ? SENDER : FAST_RECONNECT), transports: ['polling'] }));
    for (const cl of clients) for (const r of rooms) expect(await ask(cl.socket, 'join-room', r)).toMatchObject({ ok: true });
    const news = new Map<string, Map<string, number>>(clients.map((cl) => [cl.userId, new Map()]));
    for (const cl of clients)
      cl.socket.on('news', (d: { pid: string }) => news.get(cl.userId)!.set(d.pid, (news.get(cl.userId)!.get(d.pid) ?? 0) + 1));

    // Client traffic: three websocket and one polling client send, acks awaited.
    const senders = [clients[0], clients[1], clients[2], clients[CLIENTS]];
    const traffic = startTraffic(senders, rooms, 60, 180000);
    // Backend traffic: publishes through the balancer, one at a time.
    const published: string[] = [];
    const publishFailures: string[] = [];
    let publishing = true;
    const publisher = (async () => {
      const end = Date.now() + 180000;
      for (let n = 0; publishing && Date.now() < end; n++) {
        const pid = `roll-${tag}-${n}`;
        const r = await publish(c, { room: rooms[n % 2], event: 'news', data: { pid, n }, id: pid });
        if (r.status === 202) published.push(pid);
        else publishFailures.push(`${r.status} ${r.body.slice(0, 120)}`);
        await sleep(50);
      }
    })();

    await sleep(1000);
    const cycles: Array<{
      gateway: string;
      clientsMoved: number;
      drainMs: number;
      restartMs: number;
      reconnectMsP50: number;
      reconnectMsMax: number;
    }> = [];
    for (const g of c.gateways) {
      const before = new Map(clients.map((cl) => [cl.userId, cl.disconnects.length]));
      const tTerm = Date.now();
      await c.kill(g, 'SIGTERM');
      const drainMs = Date.now() - tTerm;
      const restartMs = await c.restart(g);
      await waitReady(c.gatewayUrl(g));
      await sleep(1000); // HAProxy's check (every 500 ms, rise 1) puts it back in rotation
      const moved = clients.filter((cl) => cl.disconnects.length > before.get(cl.userId)!);
      await until(() => moved.every((cl) => cl.socket.connected), 20000, `the clients of ${g} to be back`);
      const reconnects = moved.map((cl) => {
        const d = cl.disconnects[before.get(cl.userId)!];
        return cl.connects.find((k) => k.at >= d.at)!.at - d.at;
      });
      cycles.push({
        gateway: g,
        clientsMoved: moved.length,
        drainMs,
        restartMs,
        reconnectMsP50: pct(reconnects, 50),
        reconnectMsMax: pct(reconnects, 100),
      });
    }
    await sleep(500);
    await traffic.stop();
    publishing = false;
    await publisher;

    const ids = traffic.acked.map((a) => a.id);
    await until(
      () => clients.every((cl) => ids.every((id) => cl.counts.has(id)) && published.every((p) => news.get(cl.userId)!.has(p))),
      30000,
      'every message and publish at every client',
    ).catch(() => undefined);
    await sleep(300);
    const lostMessages = clients.reduce((n, cl) => n + ids.filter((id) => !cl.counts.has(id)).length, 0);
    const lostPublishes = clients.reduce((n, cl) => n + published.filter((p) => !news.get(cl.userId)!.has(p)).length, 0);
    const dupPublishes = clients.reduce((n, cl) => n + [...news.get(cl.userId)!.values()].filter((v) => v > 1).length, 0);
    const reconnects = clients.flatMap((cl) => cl.connects.slice(1));
    // A message sent twice (a retry of an event the pod had processed) shows as one seq with two ids.
    const idsBySeq = new Map<number, Set<string>>();
    for (const m of clients[5].messages)
      if (typeof m.data?.seq === 'number')
        idsBySeq.set(m.data.seq as number, new Set([...(idsBySeq.get(m.data.seq as number) ?? []), m.id]));
    const resentDuplicates = [...idsBySeq.values()].filter((v) => v.size > 1).length;
    const pollingSender = clients[CLIENTS].userId;
    const dupSeqs = [...idsBySeq.entries()].filter(([, v]) => v.size > 1).map(([k]) => k);
    const lostDetail = clients.flatMap((cl) =>
      traffic.acked
        .filter((x) => !cl.counts.has(x.id))
        .map((x) => ({
          client: cl.userId,
          seq: x.seq,
          sender: x.sender,
          ackedAt: x.at,
          disconnects: cl.disconnects.map((d) => `${d.reason}@${d.at}`),
          connects: cl.connects.map((k) => `${k.recovered}@${k.at}`),
        })),
    );
    if (dupSeqs.length || lostDetail.length) {
      console.log(
        'rolling: details',
        JSON.stringify({ dup: traffic.acked.filter((x) => dupSeqs.includes(x.seq)), lost: lostDetail.slice(0, 10) }),
      );
    }
    const connectErrors = clients.flatMap((cl) => cl.connectErrors.map((e) => `${cl.userId}: ${e.message}`));
    const reasons = clients.flatMap((cl) => cl.disconnects.map((d) => d.reason));

    // Afterwards: every client in both rooms once, every user online, every gateway serving.
    const m = await ask(clients[5].socket, 'get-room-members', rooms[0]);
    const p = await ask(
      clients[5].socket,
      'get-presence',
      clients.map((cl) => cl.userId),
    );
    record(__filename, 'rolling restart: SIGTERM + restart each of 3 gateways', {
      clients: clients.length,
      pollingOnlyClients: POLLING_CLIENTS,
      cycles,
      roomMessagesAcked: ids.length,
      roomMessagesLost: lostMessages,
      roomMessageDuplicates: duplicates(clients),
      failedAcks: traffic.failed.length,
      sameMessageSentTwice: resentDuplicates,
      sameMessageSentTwiceByPollingSender: traffic.acked.filter((x) => dupSeqs.includes(x.seq) && x.sender === pollingSender).length,
      publishesAccepted: published.length,
      publishFailures: publishFailures.length,
      publishesLost: lostPublishes,
      publishDuplicates: dupPublishes,
      reconnects: reconnects.length,
      recoveredReconnects: reconnects.filter((k) => k.recovered).length,
      connectErrors: connectErrors.length,
      disconnectReasons: reasons.reduce<Record<string, number>>((a, r) => ((a[r] = (a[r] ?? 0) + 1), a), {}),
      totalMs: cycles.reduce((n, x) => n + x.drainMs + x.restartMs + 1000, 0),
    });

    expect(connectErrors).toEqual([]);
    expect(traffic.failed).toEqual([]);
    expect(publishFailures).toEqual([]);
    expect(ids.length).toBeGreaterThan(50);
    expect(published.length).toBeGreaterThan(50);
    expect(lostMessages).toBe(0);
    expect(lostPublishes).toBe(0);
    expect(duplicates(clients)).toBe(0);
    // Websocket senders never send a message twice: the pod answers every event before it closes
    // the connection. A long-polling sender can (rarely): its event is processed, but once the
    // pod's readiness fails the balancer sends its next poll (which would carry the ack) to
    // another pod, the session breaks and the client resends after recovering.
    expect(traffic.acked.filter((x) => dupSeqs.includes(x.seq) && x.sender !== pollingSender)).toEqual([]);
    expect(dupPublishes).toBe(0);
    expect(cycles.every((x) => x.clientsMoved > 0)).toBe(true);
    expect(reconnects.every((k) => k.recovered)).toBe(true);
    expect(m).toMatchObject({ ok: true, count: clients.length });
    expect((m.members as Array<{ sockets: number }>).every((x) => x.sockets === 1)).toBe(true);
    expect((p.users as Array<{ status: string }>).every((u) => u.status === 'online')).toBe(true);
    for (const g of c.gateways) expect(c.alive(g)).toBe(true);
  });
});
