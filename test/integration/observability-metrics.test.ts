import { closeClients, connect, metricValue, RunningGateway, startGateways, token, until } from '../helpers/cluster';

// Metrics that need a real Socket.IO server (in this process, memory engine, fresh registry per
// gateway): the token buckets, handshake refusals, connection gauges with their namespace label,
// unknown events. Each assertion reads what a user did back from the gateway's registry.

let stops: Array<() => Promise<void>> = [];

/** Starts one in-process gateway (memory engine) with `env`. */
async function gateway(env: Record<string, string> = {}): Promise<RunningGateway> {
  const { gateways, stop } = await startGateways(1, env);
  stops.push(stop);
  return gateways[0];
}

afterEach(async () => {
  closeClients();
  await Promise.allSettled(stops.map((s) => s()));
  stops = [];
});

test('the per-socket token bucket counts rate-limited events by scope, outcome, error code and drop reason', async () => {
  const gw = await gateway({ RATE_LIMIT_EVENTS_PER_SECOND: '1', RATE_LIMIT_BURST: '3' });
  const s = await connect(gw.url, { token: await token('alice') });
  const answers = await Promise.all(Array.from({ length: 6 }, () => s.emitWithAck('get-room-members', 'lobby')));
  const limited = answers.filter((a) => a.error?.code === 'rate_limited').length;
  expect(limited).toBeGreaterThanOrEqual(2); // 3 tokens, maybe one refilled meanwhile
  expect(await metricValue(gw.metrics, 'realtime_gateway_rate_limited_total', { scope: 'event' })).toBe(limited);
  expect(
    await metricValue(gw.metrics, 'realtime_gateway_events_received_total', { event: 'get-room-members', outcome: 'rate_limited' }),
  ).toBe(limited);
  expect(await metricValue(gw.metrics, 'realtime_gateway_events_received_total', { event: 'get-room-members', outcome: 'ok' })).toBe(
    6 - limited,
  );
  expect(await metricValue(gw.metrics, 'realtime_gateway_errors_total', { code: 'rate_limited' })).toBe(limited);
  // without an ack, a refused event is answered as request-error and counted as such
  s.emit('get-room-members', 'lobby');
  await until(
    async () => (await metricValue(gw.metrics, 'realtime_gateway_request_errors_total', { code: 'rate_limited' })) === 1,
    5000,
    'the request-error',
  );
  expect(await metricValue(gw.metrics, 'realtime_gateway_rate_limited_total', { scope: 'event' })).toBe(limited + 1);
});

test('the per-address handshake limit counts scope "connect" and a refused handshake with reason rate_limited', async () => {
  const gw = await gateway({ CONNECT_RATE_LIMIT_PER_SECOND: '1' }); // burst 2
  const t = await token('bob');
  const results = await Promise.allSettled(Array.from({ length: 4 }, () => connect(gw.url, { token: t })));
  const refused = results.filter((r) => r.status === 'rejected');
  expect(refused.length).toBeGreaterThanOrEqual(1);
  for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ message: 'rate_limited' });
  expect(await metricValue(gw.metrics, 'realtime_gateway_rate_limited_total', { scope: 'connect' })).toBe(refused.length);
  expect(await metricValue(gw.metrics, 'realtime_gateway_auth_failures_total', { reason: 'rate_limited' })).toBe(refused.length);
  expect(await metricValue(gw.metrics, 'realtime_gateway_connects_total')).toBe(4 - refused.length);
});

test('refused handshakes are counted by reason', async () => {
  const gw = await gateway();
  await expect(connect(gw.url, {})).rejects.toMatchObject({ message: 'unauthorized' });
  await expect(connect(gw.url, { token: 'not-a-jwt' })).rejects.toMatchObject({ message: 'unauthorized' });
  await expect(connect(gw.url, { token: await token('carol', {}, { expiresIn: -60 }) })).rejects.toMatchObject({ message: 'unauthorized' });
  await expect(connect(`${gw.url}/workspace-other`, { token: await token('carol', { workspaces: ['acme'] }) })).rejects.toMatchObject({
    message: 'forbidden',
  });
  await expect(connect(`${gw.url}/admin`, { token: await token('carol') })).rejects.toMatchObject({ message: 'forbidden' });
  const reasons = Object.fromEntries(
    await Promise.all(
      ['missing_credentials', 'invalid_token', 'expired', 'workspace', 'role'].map(async (r) => [
        r,
        await metricValue(gw.metrics, 'realtime_gateway_auth_failures_total', { reason: r }),
      ]),
    ),
  );
  expect(reasons).toEqual({ missing_credentials: 1, invalid_token: 1, expired: 1, workspace: 1, role: 1 });
  expect(await metricValue(gw.metrics, 'realtime_gateway_connects_total')).toBe(0);
});

test('connections, connects and disconnects carry the low-cardinality namespace label ("/", "/admin", "workspace")', async () => {
  const gw = await gateway();
  const root = await connect(gw.url, { token: await token('dave') });
  const ws1 = await connect(`${gw.url}/workspace-acme`, { token: await token('dave', { workspaces: ['acme', 'beta'] }) });
  const ws2 = await connect(`${gw.url}/workspace-beta`, { token: await token('dave', { workspaces: ['acme', 'beta'] }) });
  const admin = await connect(`${gw.url}/admin`, { token: await token('root', { roles: ['admin'] }) });
  const gauge = (namespace: string) => metricValue(gw.metrics, 'realtime_gateway_connections', { nsp: namespace });
  expect([await gauge('/'), await gauge('workspace'), await gauge('/admin')]).toEqual([1, 2, 1]);
  expect(await metricValue(gw.metrics, 'realtime_gateway_connects_total', { nsp: 'workspace', recovered: 'false' })).toBe(2);
  // workspace ids never become label values
  const labels = (await gw.metrics.registry.getSingleMetric('realtime_gateway_connections')!.get()).values.map((v) => v.labels.nsp);
  expect(labels.sort()).toEqual(['/', '/admin', 'workspace']);

  ws1.disconnect();
  await until(async () => (await gauge('workspace')) === 1, 5000, 'the workspace gauge to drop');
  expect(
    await metricValue(gw.metrics, 'realtime_gateway_disconnects_total', { nsp: 'workspace', reason: 'client namespace disconnect' }),
  ).toBe(1);
  for (const s of [root, ws2, admin]) s.disconnect();
  await until(async () => (await gauge('/')) + (await gauge('workspace')) + (await gauge('/admin')) === 0, 5000, 'every gauge back to 0');
});

test('unknown events are answered bad_request (with an ack, or as request-error without one)', async () => {
  const gw = await gateway();
  const s = await connect(gw.url, { token: await token('erin') });
  expect(await s.emitWithAck('no-such-event', 1)).toMatchObject({ ok: false, error: { code: 'bad_request' } });
  s.emit('no-such-event');
  await until(
    async () => (await metricValue(gw.metrics, 'realtime_gateway_request_errors_total', { code: 'bad_request' })) === 1,
    5000,
    'the request-error',
  );
  expect(await metricValue(gw.metrics, 'realtime_gateway_events_received_total', { event: 'unknown', outcome: 'bad_request' })).toBe(2);
  expect(await metricValue(gw.metrics, 'realtime_gateway_errors_total', { code: 'bad_request' })).toBe(2);
});
