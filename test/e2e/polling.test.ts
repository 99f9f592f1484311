import { Cluster, describeLocal, httpGet, metricSum, scrapeGateways, useCluster } from './cluster';
import { ask, closeAll, E2EClient, makeClient, request, until } from './clients';
import { record, summary } from './results';

// Long-polling-only clients across 3 gateways, with and without the balancer's stickiness. Every
// HTTP request of an Engine.IO session must be served by the gateway that holds it: with
// LB_STICKY=1 HAProxy's RTGSRV cookie (kept by engine.io-client's cookie jar with
// `withCredentials: true`, like a browser) sends them there; without it (LB_STICKY=0, the default
// of `make up`: round-robin per request, no cookies) the gateway a request reaches forwards it to
// the session's gateway (services/gateway/forwarding.ts). Both must lose nothing; the forwarded
// requests are counted, and stickiness only saves the hop.

jest.setTimeout(120000);

const CLIENTS = 6;
const PER_CLIENT = 3;

interface FlowResult {
  clients: number;
  connected: number;
  joined: number;
  acked: number;
  /** Clients that received every acknowledged message of the room exactly once. */
  complete: number;
  duplicates: number;
  errors: string[];
  servers: Record<string, number>;
  /** Sockets each gateway held while the clients were connected (its realtime_gateway_connections). */
  perGateway: Record<string, number>;
  transports: string[];
  durationMs: number;
}

/** Polling-only clients join one room, each sends messages with acks, everyone must receive all of them once. */
async function pollingFlow(c: Cluster, tag: string, timeoutMs: number): Promise<FlowResult> {
  const t0 = Date.now();
  const room = `poll-${tag}-${Date.now()}`;
  const errors: string[] = [];
  const clients: E2EClient[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const userId = `poll-${tag}-${i}`;
    const cl = makeClient(c, userId, await c.token(userId), { transports: ['polling'], reconnection: false });
    cl.socket.on('connect_error', (e) => errors.push(`${userId} connect_error: ${e.message}`));
    cl.socket.on('disconnect', (r) => errors.push(`${userId} disconnect: ${r}`));
    clients.push(cl);
    // one at a time, so that round-robin spreads the sessions over the gateways
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5000);
      cl.socket.once('connect', () => (clearTimeout(t), resolve()));
      cl.socket.once('connect_error', () => (clearTimeout(t), resolve()));
    });
  }
  const connected = clients.filter((cl) => cl.socket.connected);
  const joins = await Promise.all(connected.map((cl) => ask(cl.socket, 'join-room', room)));
  joins.forEach((j, i) => !j.ok && errors.push(`${connected[i].userId} join failed: ${j.error?.message}`));
  const members = connected.filter((_, i) => joins[i].ok);
  const ids: string[] = [];
  await Promise.all(
    members.map(async (cl) => {
      for (let k = 0; k < PER_CLIENT; k++) {
        const a = await ask(cl.socket, 'message', { roomId: room, text: `${cl.userId} #${k}` });
        if (a.ok) ids.push(a.id as string);
        else errors.push(`${cl.userId} message ack failed: ${a.error?.message}`);
      }
    }),
  );
  const done = (cl: E2EClient) => ids.every((id) => cl.counts.get(id) === 1);
  await until(() => members.every(done), timeoutMs, 'every member to receive every message').catch(() => undefined);
  const servers: Record<string, number> = {};
  for (const cl of connected) servers[cl.server() ?? '?'] = (servers[cl.server() ?? '?'] ?? 0) + 1;
  const perGateway: Record<string, number> = {};
  for (const [g, url] of Object.entries(c.metricsUrls.gateways))
    perGateway[g] = metricSum((await httpGet(url)).body, 'realtime_gateway_connections');
  const result: FlowResult = {
    clients: CLIENTS,
    connected: connected.length,
    joined: members.length,
    acked: ids.length,
    complete: members.filter(done).length,
    duplicates: members.reduce((n, cl) => n + [...cl.counts.values()].filter((v) => v > 1).length, 0),
    errors: [...errors],
    servers,
    perGateway,
    transports: [...new Set(connected.map((cl) => cl.socket.io.engine?.transport?.name ?? 'closed'))],
    durationMs: Date.now() - t0,
  };
  closeAll();
  return result;
}

/** A raw Engine.IO polling session: handshake, then POSTs and a GET on the same sid, optionally sending the cookie back. */
async function rawSession(c: Cluster, withCookie: boolean): Promise<number[]> {
  const hs = await request('GET', `${c.baseUrl}/socket.io/?EIO=4&transport=polling`);
  expect(hs.status).toBe(200);
  const sid = JSON.parse(hs.body.slice(1)).sid as string;
  const cookie = String(hs.headers['set-cookie']?.[0] ?? '').split(';')[0];
  const headers: Record<string, string> = withCookie && cookie ? { cookie } : {};
  const url = `${c.baseUrl}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
  const statuses: number[] = [];
  const bodies: string[] = [];
  const token = await c.token('raw-poller');
  for (const body of [`40${JSON.stringify({ token })}`, '3', '3']) {
    const r = await request('POST', url, body, { ...headers, 'content-type': 'text/plain;charset=UTF-8' });
    statuses.push(r.status);
    bodies.push(r.body);
  }
  const get = await request('GET', url, undefined, headers, 5000);
  statuses.push(get.status);
  bodies.push(get.body);
  expect(bodies.some((b) => b.includes('Session ID unknown'))).toBe(false);
  return statuses;
}

/** Forwarded polling requests counted by every gateway (0 against an external cluster: no metrics ports). */
const forwardedOk = (c: Cluster) =>
  c.local
    ? scrapeGateways(c, 'realtime_gateway_forwarded_requests_total', (l) => l.kind === 'polling' && l.outcome === 'ok')
    : Promise.resolve(0);

describe('long-polling only, behind the sticky balancer (LB_STICKY=1, 3 gateways)', () => {
  const cluster = useCluster({ name: 'polling-sticky', gateways: 3, workers: 1, sticky: true });
  afterAll(() => closeAll());

  test('polling-only clients spread over the gateways join, send with acks and receive every message once', async () => {
    const c = cluster();
    const before = await forwardedOk(c);
    let r = await pollingFlow(c, 'sticky', 15000);
    // An external cluster may be disturbed meanwhile (the kind script deletes pods): one more try.
    if (!c.local && (r.errors.length || r.complete < CLIENTS)) r = await pollingFlow(c, 'sticky-again', 15000);
    record(__filename, 'polling: sticky balancer, polling-only clients', {
      clients: r.clients,
      connected: r.connected,
      messagesAcked: r.acked,
      clientsWithEveryMessage: r.complete,
      duplicates: r.duplicates,
      errors: r.errors.length,
      gateways: r.servers,
      forwardedRequests: (await forwardedOk(c)) - before,
      durationMs: r.durationMs,
    });
    expect(r.errors).toEqual([]);
    expect(r.connected).toBe(CLIENTS);
    expect(r.acked).toBe(CLIENTS * PER_CLIENT);
    expect(r.complete).toBe(CLIENTS);
    expect(r.duplicates).toBe(0);
    expect(r.transports).toEqual(['polling']);
    if (c.local) expect(Object.keys(r.servers).filter((s) => s.startsWith('gw')).length).toBeGreaterThanOrEqual(2);
    // The cookie kept every request on its session's gateway: nothing had to be forwarded.
    if (c.local) expect((await forwardedOk(c)) - before).toBe(0);
  });

  test('a raw Engine.IO polling session that sends the cookie back stays on its gateway', async () => {
    const statuses = await rawSession(cluster(), true);
    expect(statuses).toEqual([200, 200, 200, 200]);
  });
});

describeLocal('long-polling only, behind a balancer WITHOUT stickiness (LB_STICKY=0, the default of make up): the same flow works', () => {
  const cluster = useCluster({ name: 'polling-unsticky', gateways: 3, workers: 1, sticky: false });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('polling-only clients without cookies spread over the gateways join, send with acks and receive every message once; requests reaching another gateway are forwarded', async () => {
    const c = cluster();
    const before = await forwardedOk(c);
    const r = await pollingFlow(c, 'unsticky', 15000);
    const forwarded = (await forwardedOk(c)) - before;
    const refused = await scrapeGateways(
      c,
      'realtime_gateway_forwarded_requests_total',
      (l) => l.outcome !== 'ok' && l.outcome !== 'no_owner' && l.outcome !== 'aborted',
    );
    record(__filename, 'polling: round-robin balancer without stickiness, polling-only clients (forwarding)', {
      clients: r.clients,
      connected: r.connected,
      messagesAcked: r.acked,
      clientsWithEveryMessage: r.complete,
      duplicates: r.duplicates,
      errors: r.errors.length,
      socketsPerGateway: r.perGateway,
      forwardedRequests: forwarded,
      forwardsRefused: refused,
      durationMs: r.durationMs,
    });
    expect(r.errors).toEqual([]);
    expect(r.connected).toBe(CLIENTS);
    expect(r.acked).toBe(CLIENTS * PER_CLIENT);
    expect(r.complete).toBe(CLIENTS);
    expect(r.duplicates).toBe(0);
    expect(r.transports).toEqual(['polling']);
    expect(Object.values(r.perGateway).filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    expect(forwarded).toBeGreaterThan(0);
    expect(refused).toBe(0);
  });

  test('a raw Engine.IO polling session without any cookie gets every answer, wherever its requests land', async () => {
    const statuses = await rawSession(cluster(), false);
    expect(statuses).toEqual([200, 200, 200, 200]);
  });
});
