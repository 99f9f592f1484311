import { Cluster, describeLocal, useCluster } from './cluster';
import { ask, closeAll, E2EClient, makeClient, request, until } from './clients';
import { record, summary } from './results';

// Long-polling-only clients need the balancer's stickiness: every HTTP request of one Engine.IO
// session must reach the gateway that holds it. Node's engine.io-client keeps HAProxy's RTGSRV
// cookie in its cookie jar when `withCredentials: true`, like a browser. The same flow against a
// cluster started with LB_STICKY=0 must fail ("Session ID unknown"), proving the test sees it.

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
  const result: FlowResult = {
    clients: CLIENTS,
    connected: connected.length,
    joined: members.length,
    acked: ids.length,
    complete: members.filter(done).length,
    duplicates: members.reduce((n, cl) => n + [...cl.counts.values()].filter((v) => v > 1).length, 0),
    errors: [...errors],
    servers,
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
  if (!withCookie) expect(bodies.some((b) => b.includes('Session ID unknown'))).toBe(true);
  return statuses;
}

describe('long-polling only, behind the sticky balancer (3 gateways)', () => {
  const cluster = useCluster({ name: 'polling-sticky', gateways: 3, workers: 1 });
  afterAll(() => closeAll());

  test('polling-only clients spread over the gateways join, send with acks and receive every message once', async () => {
    const c = cluster();
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
      durationMs: r.durationMs,
    });
    expect(r.errors).toEqual([]);
    expect(r.connected).toBe(CLIENTS);
    expect(r.acked).toBe(CLIENTS * PER_CLIENT);
    expect(r.complete).toBe(CLIENTS);
    expect(r.duplicates).toBe(0);
    expect(r.transports).toEqual(['polling']);
    if (c.local) expect(Object.keys(r.servers).filter((s) => s.startsWith('gw')).length).toBeGreaterThanOrEqual(2);
  });

  test('a raw Engine.IO polling session that sends the cookie back stays on its gateway', async () => {
    const statuses = await rawSession(cluster(), true);
    expect(statuses).toEqual([200, 200, 200, 200]);
  });
});

describeLocal('long-polling only, behind a balancer WITHOUT stickiness (LB_STICKY=0): the same test fails', () => {
  const cluster = useCluster({ name: 'polling-unsticky', gateways: 3, workers: 1, sticky: false });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('the same flow breaks: requests land on gateways that do not know the session', async () => {
    const r = await pollingFlow(cluster(), 'unsticky', 5000);
    record(__filename, 'polling: balancer without stickiness (expected to fail)', {
      clients: r.clients,
      connected: r.connected,
      clientsWithEveryMessage: r.complete,
      errors: r.errors.length,
      sampleErrors: [...new Set(r.errors.map((e) => e.replace(/^\S+ /, '')))].slice(0, 4),
    });
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.complete).toBeLessThan(CLIENTS);
    expect(r.errors.some((e) => /connect_error|disconnect/.test(e))).toBe(true);
  });

  test('a raw Engine.IO polling session gets 400 "Session ID unknown" from the other gateways', async () => {
    const statuses = await rawSession(cluster(), true);
    expect(statuses.filter((s) => s === 400).length).toBeGreaterThanOrEqual(1);
  });
});
