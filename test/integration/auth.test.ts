import type { Socket as ClientSocket } from 'socket.io-client';
import { closeClients, connect, metricValue, RunningGateway, startGateways, token, until } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

type Refusal = Error & { data?: { code: string; message: string } };

/** Connects and expects a refusal; returns the client's `connect_error`. */
async function refused(url: string, auth: Record<string, unknown>): Promise<Refusal> {
  try {
    const s = await connect(url, auth);
    s.disconnect();
  } catch (e) {
    return e as Refusal;
  }
  throw new Error(`expected ${url} to refuse ${JSON.stringify(auth)}`);
}

/** Asserts the shape PROTOCOL.md promises for a refused connection. */
function expectRefusal(err: Refusal, code: 'unauthorized' | 'forbidden' | 'rate_limited' | 'overloaded', message?: string | RegExp): void {
  expect(err.message).toBe(code);
  expect(err.data).toEqual({ code, message: expect.any(String) });
  expect(err.data!.message.length).toBeGreaterThan(0);
  if (message) expect(err.data!.message).toMatch(message);
}

const failures = (g: RunningGateway, reason?: string) =>
  metricValue(g.metrics, 'realtime_gateway_auth_failures_total', reason ? { reason } : {});
const connections = (g: RunningGateway, nsp = '/') => metricValue(g.metrics, 'realtime_gateway_connections', { nsp });

// The same behaviour on both engines: one in-memory node, and two gateways sharing Redis.
describe.each([
  ['memory', 1],
  ['redis', 2],
])('handshake refusals (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  const stops: Array<() => Promise<void>> = [];
  let gws: RunningGateway[];

  /** Starts extra gateways for one test (on this engine). */
  const start = async (count: number, env: Record<string, string> = {}) => {
    const c = await startGateways(count, { REDIS_URL: redis?.url, ...env });
    stops.push(c.stop);
    return c.gateways;
  };

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    gws = await start(n);
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await Promise.all(stops.map((s) => s()));
    await redis?.stop();
  });

  const url = (i: number) => gws[i % gws.length].url;

  test('unauthorized: no token, garbage, expired, wrong secret, missing sub; each counted by reason', async () => {
    const g = gws[0];
    const before = {
      all: await failures(g),
      missing: await failures(g, 'missing_credentials'),
      invalid: await failures(g, 'invalid_token'),
      expired: await failures(g, 'expired'),
      claims: await failures(g, 'bad_claims'),
    };
    expectRefusal(await refused(g.url, {}), 'unauthorized', /auth\.token/);
    expectRefusal(await refused(g.url, { token: '' }), 'unauthorized');
    expectRefusal(await refused(g.url, { token: 12345 }), 'unauthorized');
    expectRefusal(await refused(g.url, { token: 'not-a-jwt' }), 'unauthorized', 'invalid token');
    expectRefusal(
      await refused(g.url, { token: await token('alice', {}, { expiresIn: Math.floor(Date.now() / 1000) - 60 }) }),
      'unauthorized',
      'token expired',
    );
    expectRefusal(
      await refused(g.url, { token: await token('alice', {}, { secret: 'some-other-secret-that-is-32-bytes-long!' }) }),
      'unauthorized',
      'invalid token',
    );
    expectRefusal(await refused(g.url, { token: await token('', {}) }), 'unauthorized');
    expectRefusal(await refused(g.url, { token: await token('alice', {}, { expiresIn: null }) }), 'unauthorized', /exp/);
    expectRefusal(await refused(g.url, { token: await token('alice', { roles: 'admin' }) }), 'unauthorized', /roles/);
    // insecure credentials are not accepted in jwt mode
    expectRefusal(await refused(g.url, { userId: 'alice' }), 'unauthorized');
    expect(await failures(g)).toBe(before.all + 10);
    expect(await failures(g, 'missing_credentials')).toBe(before.missing + 4);
    expect(await failures(g, 'invalid_token')).toBe(before.invalid + 2);
    expect(await failures(g, 'expired')).toBe(before.expired + 1);
    expect(await failures(g, 'bad_claims')).toBe(before.claims + 3);
    // nothing refused ever became a connection
    expect(await connections(g)).toBe(0);
    // a valid token still connects
    const ok = await connect(g.url, { token: await token('alice') });
    expect(ok.connected).toBe(true);
  });

  test('forbidden: a workspace not in the workspaces claim', async () => {
    const t = await token('wsuser', { workspaces: ['acme'] });
    const before = await failures(gws[0], 'workspace');
    expectRefusal(await refused(`${gws[0].url}/workspace-other`, { token: t }), 'forbidden', /workspace "other"/);
    expectRefusal(await refused(`${gws[0].url}/workspace-other`, { token: await token('nows') }), 'forbidden');
    expect(await failures(gws[0], 'workspace')).toBe(before + 2);
    // the granted workspace works, on every pod
    for (let i = 0; i < gws.length; i++) {
      const s = await connect(`${url(i)}/workspace-acme`, { token: t });
      expect((await s.emitWithAck('join-room', 'lobby')).ok).toBe(true);
    }
    // an invalid token on a workspace is unauthorized, not forbidden
    expectRefusal(await refused(`${gws[0].url}/workspace-acme`, { token: 'garbage' }), 'unauthorized');
  });

  test('forbidden: /admin without role admin; allowed with it', async () => {
    const before = await failures(gws[0], 'role');
    expectRefusal(await refused(`${url(0)}/admin`, { token: await token('pleb') }), 'forbidden', /admin/);
    expectRefusal(await refused(`${url(0)}/admin`, { token: await token('pleb', { roles: ['moderator'] }) }), 'forbidden');
    expect(await failures(gws[0], 'role')).toBe(before + 2);
    const admin = await connect(`${url(n - 1)}/admin`, { token: await token('boss', { roles: ['admin'] }) });
    expect((await admin.emitWithAck('admin:stats')).ok).toBe(true);
    // an admin socket cannot use client events, and a client socket cannot use admin events
    expect((await admin.emitWithAck('join-room', 'lobby')).error.code).toBe('bad_request');
    const user = await connect(url(0), { token: await token('pleb') });
    expect((await user.emitWithAck('admin:stats')).error.code).toBe('bad_request');
  });

  test('an unknown namespace is refused forbidden (contract code and data) and does not disturb valid namespaces', async () => {
    const t = await token('explorer', { workspaces: ['acme'] });
    const before = await failures(gws[0], 'namespace');
    for (const nsp of ['/nope', '/workspace-', '/workspace-has.dot', '/admin2']) {
      expectRefusal(
        await refused(`${url(0)}${nsp}`, { token: t }),
        'forbidden',
        new RegExp(`unknown namespace "${nsp.replace('.', '\\.')}"`),
      );
    }
    // no credentials at all: still the same answer (the namespace is checked first)
    expectRefusal(await refused(`${url(0)}/nope`, {}), 'forbidden', /unknown namespace/);
    expect(await failures(gws[0], 'namespace')).toBe(before + 5);
    expect((await connect(url(0), { token: t })).connected).toBe(true);
  });

  test('rate_limited: CONNECT_RATE_LIMIT_PER_SECOND=1 refuses quick repeated handshakes from one address', async () => {
    const [g] = await start(1, { CONNECT_RATE_LIMIT_PER_SECOND: '1' });
    const t = await token('hasty');
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => connect(g.url, { token: t })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const bad = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as Refusal);
    // a burst of 2 (twice the rate) then 1 per second: 6 handshakes at once cannot all pass
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(bad.length).toBeGreaterThanOrEqual(1);
    for (const e of bad) expectRefusal(e, 'rate_limited', /too many connection attempts/);
    expect(await failures(g, 'rate_limited')).toBe(bad.length);
    expect(await metricValue(g.metrics, 'realtime_gateway_rate_limited_total', { scope: 'connect' })).toBe(bad.length);
    // the limit is a rate, not a ban: a later handshake is accepted again
    let later: ClientSocket | undefined;
    await until(
      async () => {
        later = await connect(g.url, { token: t }).catch(() => undefined);
        return !!later;
      },
      10000,
      'a handshake after the refill',
    );
    expect(later!.connected).toBe(true);
  });

  test('overloaded: MAX_CONNECTIONS=2 refuses the third connection, and accepts again once one leaves', async () => {
    const [g] = await start(1, { MAX_CONNECTIONS: '2' });
    const a = await connect(g.url, { token: await token('o1') });
    await connect(g.url, { token: await token('o2') });
    expectRefusal(await refused(g.url, { token: await token('o3') }), 'overloaded', /connection limit/);
    // the limit counts sockets of every namespace on the pod
    expectRefusal(await refused(`${g.url}/admin`, { token: await token('o4', { roles: ['admin'] }) }), 'overloaded');
    expect(await failures(g, 'overloaded')).toBe(2);
    expect(await connections(g)).toBe(2);
    a.disconnect();
    await until(async () => (await connections(g)) === 1, 5000, 'the server to see the disconnect');
    const c = await connect(g.url, { token: await token('o3') });
    expect(c.connected).toBe(true);
  });

  test('overloaded: concurrent handshakes never exceed MAX_CONNECTIONS', async () => {
    const [g] = await start(1, { MAX_CONNECTIONS: '2' });
    const results = await Promise.allSettled(Array.from({ length: 6 }, async (_, i) => connect(g.url, { token: await token(`c${i}`) })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const bad = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as Refusal);
    expect(ok).toHaveLength(2);
    for (const e of bad) expectRefusal(e, 'overloaded');
    expect(await connections(g)).toBe(2);
  });

  test('insecure mode: auth.userId connects without a token; an invalid userId is refused', async () => {
    const [g] = await start(1, { AUTH_MODE: 'insecure' });
    const s = await connect(g.url, { userId: 'dev-user' });
    expect((await s.emitWithAck('join-room', 'dev-room')).ok).toBe(true);
    const members = await s.emitWithAck('get-room-members', 'dev-room');
    expect(members.members).toEqual([{ userId: 'dev-user', sockets: 1 }]);
    const admin = await connect(`${g.url}/admin`, { userId: 'dev-admin', roles: ['admin'] });
    expect((await admin.emitWithAck('admin:stats')).ok).toBe(true);
    expectRefusal(await refused(`${g.url}/admin`, { userId: 'dev-user' }), 'forbidden');
    for (const auth of [{}, { userId: '' }, { userId: 'has space' }, { userId: 42 }, { token: await token('alice') }]) {
      expectRefusal(await refused(g.url, auth), 'unauthorized', /auth\.userId/);
    }
    expect(await failures(g, 'missing_credentials')).toBe(5);
  });
});
