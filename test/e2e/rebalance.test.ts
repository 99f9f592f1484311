import { describeLocal, httpGet, metricSum, useCluster, type Cluster } from './cluster';
import { ask, closeAll, connectMany, duplicates, E2EClient, FAST_RECONNECT, sleep, startTraffic, until } from './clients';
import { record, summary } from './results';

// Rebalancing after a scale-out (issue #17): the local cluster runs 2 gateways behind HAProxy
// (round-robin, no cookies: make up's default) with 300 clients in 10 rooms, acknowledged room
// traffic throughout; `make scale GATEWAYS=3` adds a gateway and reloads HAProxy. Long-lived
// connections stay where they landed, so without rebalancing the new gateway would get nothing but
// new clients; with it (defaults: 20 % tolerance, 1 %/s, 5 s heartbeats) the two full gateways move
// their excess with recoverable closes. Done when every gateway is within the tolerance of the fair
// share, within 2 minutes of the scale command, with 0 acknowledged messages lost, none duplicated,
// every moved client recovered, and no user-left / user-joined / offline for a user who stayed.

jest.setTimeout(300000);

const CLIENTS = 300;
const ROOMS = 10;
const TOLERANCE = 0.2;
const DEADLINE_MS = 120000;

/** `name` summed per gateway, from each one's /metrics (a scrape that fails is tried again, 3 times). */
async function perGateway(c: Cluster, name: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [g, url] of Object.entries(c.metricsUrls.gateways)) {
    out[g] = NaN;
    for (let attempt = 0; attempt < 3 && Number.isNaN(out[g]); attempt++) {
      const { status, body } = await httpGet(url, 5000);
      if (status === 200) out[g] = metricSum(body, name);
      else console.log(`rebalance e2e: ${g} ${url} answered ${status}`);
    }
  }
  return out;
}
const connectionsPerGateway = (c: Cluster) => perGateway(c, 'realtime_gateway_connections');
const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** True when every gateway holds the fair share within the tolerance. */
function even(counts: number[]): boolean {
  const fair = counts.reduce((a, b) => a + b, 0) / counts.length;
  return counts.every((n) => Math.abs(n - fair) <= TOLERANCE * fair);
}

/** From now on every user-joined / user-left of one of `clients`' users, and every `offline`, is a flap. */
function watchFlaps(clients: E2EClient[]): string[] {
  const ids = new Set(clients.map((cl) => cl.userId));
  const flaps: string[] = [];
  for (const cl of clients) {
    cl.socket.on('user-joined', (e: { userId: string }) => ids.has(e.userId) && flaps.push(`joined ${e.userId} (seen by ${cl.userId})`));
    cl.socket.on('user-left', (e: { userId: string }) => ids.has(e.userId) && flaps.push(`left ${e.userId} (seen by ${cl.userId})`));
    cl.socket.on('presence', (e: { userId: string; status: string }) => e.status === 'offline' && flaps.push(`offline ${e.userId}`));
  }
  return flaps;
}

describeLocal('scale-out from 2 to 3 gateways under 300 clients (make scale), rebalancing on', () => {
  const cluster = useCluster({
    name: 'rebalance',
    gateways: 2,
    maxGateways: 3,
    workers: 1,
    sticky: false,
    gatewayEnv: { REBALANCE_ENABLED: 'true', SHUTDOWN_DELAY_MS: 1500 },
  });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('the new gateway reaches its fair share within the tolerance in under 2 minutes; 0 lost, no flap', async () => {
    const c = cluster();
    const tag = Date.now().toString(36);
    const rooms = Array.from({ length: ROOMS }, (_, i) => `rb-${tag}-r${i}`);
    const SENDER = { ...FAST_RECONNECT, retries: 5, ackTimeout: 10000 };
    // A quarter websocket-only, the rest the default (long-polling, then the upgrade).
    const ids = Array.from({ length: CLIENTS }, (_, i) => `rb-${tag}-u${i}`);
    const clients = [
      ...(await connectMany(c, ids.slice(0, 4), SENDER)),
      ...(await connectMany(c, ids.slice(4, CLIENTS / 4), { ...FAST_RECONNECT, transports: ['websocket'] })),
      ...(await connectMany(c, ids.slice(CLIENTS / 4), FAST_RECONNECT)),
    ];
    const senders = clients.slice(0, 4);
    for (const s of senders) for (const r of rooms) expect(await ask(s.socket, 'join-room', r)).toMatchObject({ ok: true });
    for (let i = 4; i < CLIENTS; i++) expect(await ask(clients[i].socket, 'join-room', rooms[i % ROOMS])).toMatchObject({ ok: true });
    for (let i = 0; i < CLIENTS; i++) await ask(clients[i].socket, 'presence:subscribe', [clients[(i + 1) % CLIENTS].userId]);
    const roomOf = (_cl: E2EClient, i: number) => (i < 4 ? rooms : [rooms[i % ROOMS]]);
    const flaps = watchFlaps(clients);
    const before = await connectionsPerGateway(c);
    const traffic = startTraffic(senders, rooms, 150, 280000);
    await sleep(2000);

    const t0 = Date.now();
    const scaleMs = await c.scale(3);
    const timeline: Array<[number, number[]]> = [];
    let reachedMs: number | undefined;
    while (Date.now() - t0 < DEADLINE_MS + 30000) {
      const counts = Object.values(await connectionsPerGateway(c));
      timeline.push([Math.round((Date.now() - t0) / 1000), counts]);
      if (timeline.length % 10 === 1)
        console.log(`rebalance e2e: ${timeline[timeline.length - 1][0]} s after make scale: ${counts.join('/')}`);
      if (even(counts)) {
        reachedMs = Date.now() - t0;
        break;
      }
      await sleep(1000);
    }
    // Stays even (no churn once within the band): 15 s more of traffic.
    const closesAtEven = sum(await perGateway(c, 'realtime_gateway_rebalance_closes_total'));
    await sleep(15000);
    const after = await connectionsPerGateway(c);
    const closes = sum(await perGateway(c, 'realtime_gateway_rebalance_closes_total'));
    const steered = sum(await perGateway(c, 'realtime_gateway_rebalance_steered_handshakes_total'));
    await traffic.stop();

    const acked = traffic.acked;
    const missing = () =>
      clients.reduce((n, cl, i) => n + acked.filter((a) => roomOf(cl, i).includes(a.room) && !cl.counts.has(a.id)).length, 0);
    await until(() => missing() === 0, 30000, 'every acked message at every member').catch(() => undefined);
    const lost = missing();
    const reconnects = clients.flatMap((cl) => cl.connects.slice(1));
    const moved = clients.filter((cl) => cl.disconnects.length > 0).length;
    const figures = {
      clients: CLIENTS,
      before,
      scaleCommandMs: scaleMs,
      timeToFairShareMs: reachedMs ?? null,
      timeline: timeline.filter((_, i) => i % 5 === 0 || i === timeline.length - 1).map(([s, n]) => `${s}s:${n.join('/')}`),
      after,
      rebalanceCloses: closes,
      closesAfterEven: closes - closesAtEven,
      steeredHandshakes: steered,
      clientsMoved: moved,
      reconnects: reconnects.length,
      recoveredReconnects: reconnects.filter((k) => k.recovered).length,
      roomMessagesAcked: acked.length,
      roomMessagesLost: lost,
      roomMessageDuplicates: duplicates(clients),
      failedAcks: traffic.failed.length,
      flaps: flaps.length,
      connectErrors: clients.reduce((n, cl) => n + cl.connectErrors.length, 0),
    };
    record(__filename, 'scale-out 2 -> 3 gateways under 300 clients (round-robin), rebalancing defaults', figures);
    if (flaps.length) console.log('rebalance: flaps', flaps.slice(0, 20));

    expect(reachedMs).toBeDefined();
    expect(reachedMs!).toBeLessThan(DEADLINE_MS);
    expect(even(Object.values(after))).toBe(true);
    expect(Object.keys(after)).toHaveLength(3);
    expect(acked.length).toBeGreaterThan(200);
    expect(traffic.failed).toEqual([]);
    expect(lost).toBe(0);
    expect(duplicates(clients)).toBe(0);
    expect(flaps).toEqual([]);
    expect(closes).toBeGreaterThan(0);
    expect(reconnects.every((k) => k.recovered)).toBe(true);
    expect(clients.every((cl) => cl.socket.connected)).toBe(true);
    // Membership intact: the room has its 30 members and the 4 senders, one socket each.
    const m = await ask(clients[4].socket, 'get-room-members', rooms[4]);
    expect(m).toMatchObject({ ok: true, count: clients.filter((_, i) => i >= 4 && i % ROOMS === 4).length + senders.length });
    expect((m.members as Array<{ sockets: number }>).every((x) => x.sockets === 1)).toBe(true);

    // And back in: `make scale GATEWAYS=2` takes gateway-3 out of the balancer, then drains it; its
    // clients recover on the other two.
    const onThird = after['gateway-3'];
    const disconnectsBefore = new Map(clients.map((cl) => [cl, cl.disconnects.length]));
    const inMs = await c.scale(2);
    await until(() => clients.every((cl) => cl.socket.connected), 30000, 'every client connected after the scale-in');
    const movedIn = clients.filter((cl) => cl.disconnects.length > disconnectsBefore.get(cl)!);
    const lastConnects = movedIn.map((cl) => cl.connects[cl.connects.length - 1]);
    const left = await connectionsPerGateway(c);
    record(__filename, 'scale-in 3 -> 2 gateways (make scale GATEWAYS=2)', {
      scaleCommandMs: inMs,
      onGateway3: onThird,
      clientsMoved: movedIn.length,
      recovered: lastConnects.filter((k) => k.recovered).length,
      after: left,
      flaps: flaps.length,
    });
    expect(Object.keys(left).sort()).toEqual(['gateway-1', 'gateway-2']);
    expect(sum(left)).toBe(CLIENTS);
    expect(movedIn.length).toBeGreaterThanOrEqual(onThird);
    expect(lastConnects.every((k) => k.recovered)).toBe(true);
    expect(flaps).toEqual([]);
  });
});
