import { closeClients, connect, metricValue, RunningGateway, startGateways, token } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// Data nested deeper than MAX_DATA_DEPTH (32) levels, binary or not, is refused `bad_request` at
// validation in `message`, `direct-message` and the publish API. Before, binary data nested deeper
// than the adapter's msgpack encoder accepts (100 levels) was answered `unavailable` and counted as
// a Redis error (a false Redis alert), and deep data was otherwise accepted.

jest.setTimeout(60000);

const KEY = 'depth-test-key-0123456789';

/** `levels` nested arrays around a leaf. */
function nested(levels: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

describe.each(['memory', 'redis'] as const)('data nesting depth (%s engine)', (engine) => {
  let redis: TestRedis | undefined;
  let gw: RunningGateway;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const c = await startGateways(1, { REDIS_URL: redis?.url, API_KEYS: KEY, RATE_LIMIT_EVENTS_PER_SECOND: '0' });
    gw = c.gateways[0];
    stop = c.stop;
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await stop?.();
    await redis?.stop();
  });

  const counts = async () => ({
    badRequest: await metricValue(gw.metrics, 'realtime_gateway_errors_total', { code: 'bad_request' }),
    unavailable: await metricValue(gw.metrics, 'realtime_gateway_errors_total', { code: 'unavailable' }),
    redisErrors: await metricValue(gw.metrics, 'realtime_redis_errors_total'),
  });

  test.each([
    ['binary, 101 levels', 101, Buffer.from([1, 2, 3])],
    ['binary, 33 levels', 33, Buffer.from([1, 2, 3])],
    ['plain JSON, 33 levels', 33, 'leaf'],
  ])('message and direct-message with %s: bad_request, no Redis error', async (_name, levels, leaf) => {
    const s = await connect(gw.url, { token: await token('deep-sender') });
    expect(await s.emitWithAck('join-room', 'deep')).toMatchObject({ ok: true });
    const before = await counts();
    const data = nested(levels, leaf);
    const refused = { ok: false, error: { code: 'bad_request', message: 'data: nested deeper than 32 levels' } };
    expect(await s.emitWithAck('message', { roomId: 'deep', data })).toEqual(refused);
    expect(await s.emitWithAck('direct-message', { toUserId: 'deep-recipient', data })).toEqual(refused);
    const after = await counts();
    expect(after.badRequest).toBe(before.badRequest + 2);
    expect(after.unavailable).toBe(before.unavailable);
    expect(after.redisErrors).toBe(before.redisErrors);
  });

  test('32 levels (the bound), binary included, are accepted and delivered', async () => {
    const s = await connect(gw.url, { token: await token('deep-ok') });
    expect(await s.emitWithAck('join-room', 'deep-ok')).toMatchObject({ ok: true });
    const got = new Promise<unknown>((resolve) => s.once('message', (m: { data: unknown }) => resolve(m.data)));
    const data = nested(31, { bin: Buffer.from([7]) }); // 31 arrays + 1 object = 32 levels
    expect(await s.emitWithAck('message', { roomId: 'deep-ok', data })).toMatchObject({ ok: true });
    let v = (await got) as unknown;
    for (let i = 0; i < 31; i++) v = (v as unknown[])[0];
    expect(Buffer.from((v as { bin: Uint8Array }).bin)).toEqual(Buffer.from([7]));
  });

  test('the publish API refuses data nested deeper than 32 levels with 400 bad_request', async () => {
    const post = (data: unknown) =>
      fetch(`http://127.0.0.1:${gw.port}/api/v1/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ room: 'deep', event: 'news', data }),
      });
    const deep = await post(nested(40, 1));
    expect(deep.status).toBe(400);
    expect(await deep.json()).toEqual({ error: { code: 'bad_request', message: 'data: nested deeper than 32 levels' } });
    expect((await post(nested(32, 1))).status).toBe(202);
  });
});
