import {
  closeClients,
  collect,
  connect,
  GatewayProcess,
  metricValue,
  RunningGateway,
  spawnService,
  startGateways,
  token,
  until,
  waitFor,
} from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

const get = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
};

// Limits and hostile input on both engines: one in-memory node, and two gateways sharing Redis.
describe.each([
  ['memory', 1],
  ['redis', 2],
])('edge cases (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  let gws: RunningGateway[];
  let limited: RunningGateway;
  const stops: Array<() => Promise<void>> = [];
  const url = (i: number) => gws[i % gws.length].url;

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const main = await startGateways(n, { REDIS_URL: redis?.url, RATE_LIMIT_EVENTS_PER_SECOND: '0', SOCKET_WRITE_BYTES_PER_SECOND: '0' });
    stops.push(main.stop);
    gws = main.gateways;
    const lim = await startGateways(1, { REDIS_URL: redis?.url, RATE_LIMIT_EVENTS_PER_SECOND: '5', RATE_LIMIT_BURST: '5' });
    stops.push(lim.stop);
    limited = lim.gateways[0];
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await Promise.all(stops.map((s) => s()));
    await redis?.stop();
  });

  const user = async (id: string, base: string, claims: Record<string, unknown> = {}, opts = {}) =>
    connect(base, { token: await token(id, claims) }, opts);
  const m = (g: RunningGateway, name: string, labels: Record<string, string> = {}) =>
    metricValue(g.metrics, `realtime_gateway_${name}`, labels);

  test('per-socket event rate limit: a burst gets rate_limited answers; the socket and others keep working', async () => {
    const g = limited;
    const s = await user('burst', g.url);
    const other = await user('calm', g.url);
    const before = {
      limited: await m(g, 'rate_limited_total', { scope: 'event' }),
      received: await m(g, 'events_received_total', { event: 'get-room-members', outcome: 'rate_limited' }),
      requestErrors: await m(g, 'request_errors_total', { code: 'rate_limited' }),
      errors: await m(g, 'errors_total', { code: 'rate_limited' }),
    };
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 30 }, () => s.emitWithAck('get-room-members', 'lobby')));
    const elapsed = Date.now() - t0;
    const ok = answers.filter((a) => a.ok);
    const refused = answers.filter((a) => !a.ok);
    expect(ok.length + refused.length).toBe(30);
    for (const a of ok) expect(a).toEqual({ ok: true, room: 'lobby', count: 0, members: [] });
    for (const a of refused)
      expect(a).toEqual({ ok: false, error: { code: 'rate_limited', message: expect.stringMatching(/5 events per second/) } });
    // the burst of 5 passes, then 5 per second at most
    expect(ok.length).toBeGreaterThanOrEqual(5);
    expect(ok.length).toBeLessThanOrEqual(5 + Math.ceil((elapsed * 5) / 1000));
    expect(refused.length).toBeGreaterThan(0);
    expect(await m(g, 'rate_limited_total', { scope: 'event' })).toBe(before.limited + refused.length);
    expect(await m(g, 'events_received_total', { event: 'get-room-members', outcome: 'rate_limited' })).toBe(
      before.received + refused.length,
    );
    expect(await m(g, 'errors_total', { code: 'rate_limited' })).toBe(before.errors + refused.length);

    // another socket on the same pod has its own budget
    for (let i = 0; i < 3; i++) expect((await other.emitWithAck('join-room', 'calm-room')).ok).toBe(true);

    // without an ack, a rate-limited event is answered as request-error and counted
    const refusal = waitFor(s, 'request-error', () => true, 5000);
    for (let i = 0; i < 10; i++) s.emit('get-room-members', 'lobby');
    expect(await refusal).toEqual({
      event: 'get-room-members',
      error: { code: 'rate_limited', message: expect.stringMatching(/events per second/) },
    });
    await until(
      async () => (await m(g, 'request_errors_total', { code: 'rate_limited' })) > before.requestErrors,
      5000,
      'the refusal to be counted',
    );

    // the limit is a rate: once tokens refill, the same socket is served again, still connected
    await until(async () => (await s.emitWithAck('get-room-members', 'lobby')).ok === true, 10000, 'the bucket to refill');
    expect(s.connected).toBe(true);
    await until(async () => (await s.emitWithAck('join-room', 'after-burst')).ok === true, 10000, 'a join after the burst');
    expect((await other.emitWithAck('get-room-members', 'after-burst')).members).toEqual([{ userId: 'burst', sockets: 1 }]);
  });

  test.each([['websocket'], ['polling']])(
    'a payload larger than MAX_HTTP_BUFFER_SIZE closes only that connection (%s)',
    async (transport) => {
      const big = await user('big', url(0), {}, { transports: [transport] });
      const peer = await user('peer', url(0));
      const far = await user('far', url(n - 1));
      for (const s of [big, peer, far]) expect((await s.emitWithAck('join-room', 'edge')).ok).toBe(true);
      const peerGot = collect(peer, 'message');
      const farGot = collect(far, 'message');

      // below the buffer limit but above MAX_MESSAGE_BYTES: answered too_large, the connection stays
      expect((await big.emitWithAck('message', { roomId: 'edge', text: 'x'.repeat(20000) })).error.code).toBe('too_large');
      expect(big.connected).toBe(true);

      const gone = waitFor<string>(big, 'disconnect', () => true, 15000);
      big.emit('message', { roomId: 'edge', text: 'y'.repeat(100_000) });
      expect(['transport close', 'transport error']).toContain(await gone);

      // everybody else is unaffected and the pod keeps serving
      const probe = waitFor(far, 'message');
      const ack = await peer.emitWithAck('message', { roomId: 'edge', text: 'still here' });
      expect(ack.ok).toBe(true);
      expect((await probe).id).toBe(ack.id);
      await until(() => peerGot.length === 1, 5000, 'the peer to get its own message');
      expect(peerGot.map((x) => x.text)).toEqual(['still here']);
      expect(farGot.map((x) => x.text)).toEqual(['still here']);
      expect(peer.connected && far.connected).toBe(true);
      const fresh = await user('fresh', url(0));
      expect((await fresh.emitWithAck('join-room', 'edge')).ok).toBe(true);
    },
  );

  test('a malformed frame closes only that connection', async () => {
    const bad = await user('garbler', url(0));
    const good = await user('good', url(0));
    const gone = waitFor<string>(bad, 'disconnect');
    // an Engine.IO message that is not a valid Socket.IO packet
    (bad.io.engine as unknown as { send(d: string): void }).send('2{not json');
    expect(['transport close', 'transport error', 'io server disconnect']).toContain(await gone);
    expect((await good.emitWithAck('join-room', 'fine')).ok).toBe(true);
    expect(good.connected).toBe(true);
  });

  test('a flood of malformed events never disconnects anyone and is counted in metrics', async () => {
    const g = gws[0];
    const s = await user('flooder', url(0));
    const witness = await user('witness', url(n - 1));
    expect((await witness.emitWithAck('join-room', 'calm')).ok).toBe(true);
    const witnessGone = collect(witness, 'disconnect');
    const floodGone = collect(s, 'disconnect');

    const labels = {
      unknownBad: { event: 'unknown', outcome: 'bad_request' },
      joinBad: { event: 'join-room', outcome: 'bad_request' },
      messageBad: { event: 'message', outcome: 'bad_request' },
      presenceBad: { event: 'get-presence', outcome: 'bad_request' },
      messageOk: { event: 'message', outcome: 'ok' },
    };
    const before: Record<string, number> = {};
    for (const [k, l] of Object.entries(labels)) before[k] = await m(g, 'events_received_total', l);
    before.errors = await m(g, 'errors_total', { code: 'bad_request' });
    before.requestErrors = await m(g, 'request_errors_total', { code: 'bad_request' });

    const huge = Array.from({ length: 5000 }, () => 'a');
    const tooMany = Array.from({ length: 1001 }, (_, i) => `u${i}`);
    // [event, args] pairs answered bad_request (known events with bad payloads)
    const known: Array<[string, unknown[]]> = [
      ['join-room', [42]],
      ['join-room', [null]],
      ['join-room', [{}]],
      ['join-room', [huge]],
      ['join-room', ['x'.repeat(200)]],
      ['join-room', []],
      ['leave-room', [{ roomId: 'a' }]],
      ['message', ['text']],
      ['message', [42]],
      ['message', [[]]],
      ['message', [null]],
      ['message', [{ roomId: 5 }]],
      ['message', [{ roomIds: huge }]],
      ['message', [{ roomId: 'calm', text: { not: 'a string' } }]],
      ['message', [{ roomId: 'calm', __proto__: { admin: true }, constructor: 1 }]],
      ['message', [Buffer.from('binary')]],
      ['get-room-members', [true]],
      ['get-presence', [tooMany]],
      ['get-presence', ['alice']],
      ['get-presence', [[1, 2]]],
      ['presence:subscribe', [{}]],
      ['presence:unsubscribe', [huge.map(() => 'a b')]],
      ['direct-message', [{ toUserId: '' }]],
      ['direct-message', ['bob']],
      ['inbox:ack', [{ upTo: 'latest' }]],
      ['inbox:ack', [123]],
    ];
    const unknown: Array<[string, unknown[]]> = [
      ['no-such-event', [{}]],
      ['admin:stats', []],
      ['toString', []],
      ['__proto__', [{}]],
      ['constructor', [1]],
      ['hasOwnProperty', ['x']],
    ];
    const rounds = 10;
    const answers = await Promise.all(
      Array.from({ length: rounds }, () => [...known, ...unknown].map(([ev, args]) => s.emitWithAck(ev, ...args))).flat(),
    );
    for (const a of answers) expect(a).toEqual({ ok: false, error: { code: 'bad_request', message: expect.any(String) } });
    // a numeric event name is unknown too
    expect((await s.emitWithAck(42 as unknown as string)).error.code).toBe('bad_request');
    // the same flood without acks: processed the same way, each refusal answered as request-error
    const noAckKnown = 2;
    const noAckUnknown = 2;
    const requestErrors = collect(s, 'request-error');
    for (let r = 0; r < rounds; r++) {
      s.emit('message', { roomId: 'calm', text: 'no ack' });
      s.emit('message', 'garbage');
      s.emit('join-room', 42);
      s.emit('nope', huge);
      s.emit('also-nope');
    }
    // Packets of one socket are handled in order: once this is answered, the flood is processed.
    expect((await s.emitWithAck('join-room', 'calm')).ok).toBe(true);

    const knownN = rounds * known.length;
    const unknownN = rounds * unknown.length + 1;
    expect(await m(g, 'events_received_total', labels.unknownBad)).toBe(before.unknownBad + unknownN + rounds * noAckUnknown);
    expect(await m(g, 'events_received_total', labels.joinBad)).toBe(before.joinBad + rounds * 7);
    expect(await m(g, 'events_received_total', labels.messageBad)).toBe(before.messageBad + rounds * 10);
    expect(await m(g, 'events_received_total', labels.presenceBad)).toBe(before.presenceBad + rounds * 3);
    expect(await m(g, 'events_received_total', labels.messageOk)).toBe(before.messageOk + rounds);
    const noAckRefused = rounds * (noAckKnown + noAckUnknown);
    expect(await m(g, 'errors_total', { code: 'bad_request' })).toBe(before.errors + knownN + unknownN + noAckRefused);
    expect(await m(g, 'request_errors_total', { code: 'bad_request' })).toBe(before.requestErrors + noAckRefused);
    expect(requestErrors).toHaveLength(noAckRefused);
    for (const e of requestErrors)
      expect(e).toEqual({ event: expect.any(String), error: { code: 'bad_request', message: expect.any(String) } });

    // nobody was disconnected, nothing leaked to the room, and both sockets work
    expect(floodGone).toHaveLength(0);
    expect(witnessGone).toHaveLength(0);
    const witnessGot = collect(witness, 'message');
    const probe = waitFor(witness, 'message');
    const sent = await s.emitWithAck('message', { roomId: 'calm', text: 'after the flood' });
    expect(sent.ok).toBe(true);
    expect((await probe).id).toBe(sent.id);
    expect(witnessGot.map((x) => x.text)).toEqual(['after the flood']);
    expect(s.connected && witness.connected).toBe(true);
  });

  test('the connections gauge follows connects and disconnects per namespace', async () => {
    const g = gws[0];
    const gauge = (nsp: string) => m(g, 'connections', { nsp });
    await until(
      async () => (await gauge('/')) === 0 && (await gauge('workspace')) === 0 && (await gauge('/admin')) === 0,
      10000,
      'a quiet pod',
    );
    const connectsBefore = await m(g, 'connects_total', { nsp: '/' });
    const a = await user('g1', g.url);
    const b = await user('g2', g.url);
    const w = await user('g3', `${g.url}/workspace-team`, { workspaces: ['team'] });
    const adm = await user('g4', `${g.url}/admin`, { roles: ['admin'] });
    // connections to another pod are not counted here
    if (n > 1) await user('elsewhere', url(1));
    expect(await gauge('/')).toBe(2);
    expect(await gauge('workspace')).toBe(1);
    expect(await gauge('/admin')).toBe(1);
    expect(await m(g, 'connects_total', { nsp: '/' })).toBe(connectsBefore + 2);
    a.disconnect();
    await until(async () => (await gauge('/')) === 1, 5000, 'the gauge to go down');
    w.disconnect();
    adm.disconnect();
    await until(async () => (await gauge('workspace')) === 0 && (await gauge('/admin')) === 0, 5000, 'the gauges to go down');
    expect(await gauge('/')).toBe(1);
    expect(await m(g, 'disconnects_total', { nsp: '/', reason: 'client namespace disconnect' })).toBeGreaterThanOrEqual(1);
    b.disconnect();
    await until(async () => (await gauge('/')) === 0, 5000, 'the gauge to reach 0');
  });

  test('/metrics is served on METRICS_PORT in Prometheus text format, and not on the public PORT', async () => {
    const g = gws[0];
    await user('metered', g.url);
    const r = await get(`http://127.0.0.1:${g.metricsPort}/metrics`);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain/);
    expect(r.body).toContain('# TYPE realtime_gateway_connections gauge');
    expect(r.body).toMatch(/^realtime_gateway_connections\{nsp="\/"\} [1-9]\d*$/m);
    expect(r.body).toContain('# TYPE realtime_gateway_events_received_total counter');
    expect(r.body).toContain('# HELP realtime_gateway_auth_failures_total');
    expect((await get(`http://127.0.0.1:${g.metricsPort}/healthz`)).status).toBe(200);
    expect((await get(`http://127.0.0.1:${g.metricsPort}/nope`)).status).toBe(404);
    const pub = await get(`${g.url}/metrics`);
    expect(pub.status).toBe(404);
    expect(pub.body).not.toContain('realtime_gateway');
    expect((await get(`${g.url}/healthz`)).status).toBe(200);
  });
});

describe('metrics of a real gateway process', () => {
  let gw: GatewayProcess | undefined;
  afterAll(async () => {
    closeClients();
    await gw?.kill('SIGKILL');
  });

  test('/metrics on METRICS_PORT includes the prom-client process defaults; the public port answers 404', async () => {
    gw = await spawnService('gateway', { LOG_LEVEL: 'error' });
    const s = await connect(gw.url, { token: await token('proc-user') });
    expect((await s.emitWithAck('join-room', 'p')).ok).toBe(true);
    const r = await get(`http://127.0.0.1:${gw.metricsPort}/metrics`);
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(r.body).toMatch(/^nodejs_heap_size_total_bytes \d/m);
    expect(r.body).toMatch(/^realtime_gateway_connections\{nsp="\/"\} 1$/m);
    expect(r.body).toMatch(/^realtime_gateway_events_received_total\{event="join-room",outcome="ok"\} 1$/m);
    const pub = await get(`${gw.url}/metrics`);
    expect(pub.status).toBe(404);
    expect(pub.body).not.toContain('process_cpu_user_seconds_total');
    s.disconnect();
    expect(await gw.kill('SIGTERM')).toBe(0);
  });
});
