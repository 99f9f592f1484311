import http from 'http';
import { AddressInfo } from 'net';
import { closeClients, connect, GatewayProcess, spawnService, token, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
}

/** A local OTLP/HTTP (JSON) receiver: collects every span the services export. */
function otlpReceiver(): Promise<{ url: string; spans: OtlpSpan[]; close(): void }> {
  const spans: OtlpSpan[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        for (const rs of body.resourceSpans ?? []) {
          const service = (rs.resource?.attributes ?? []).find((a: any) => a.key === 'service.name')?.value?.stringValue;
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? [])
              spans.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, service });
        }
      } catch {
        /* not JSON: the test below fails for lack of spans */
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, close: () => server.close() }),
    ),
  );
}

describe('tracing (OpenTelemetry, OTLP)', () => {
  let redis: TestRedis;
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  const procs: GatewayProcess[] = [];
  const KEY = 'trace-test-key-0123456789';

  beforeAll(async () => {
    redis = await startRedis();
    receiver = await otlpReceiver();
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: 'trace',
      API_KEYS: KEY,
    };
    procs.push(await spawnService('gateway', { ...otel, POD_NAME: 'trace-gw' }));
    procs.push(await spawnService('worker', { ...otel, POD_NAME: 'trace-wk' }));
  });
  afterAll(async () => {
    closeClients();
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    receiver.close();
    await redis.stop();
  });

  test('a publish produces one connected trace: API -> outbox -> worker -> adapter -> gateway emit', async () => {
    const [gw, worker] = procs;
    const c = await connect(gw.url, { token: await token('tracer') });
    expect((await c.emitWithAck('join-room', 'traced')).ok).toBe(true);
    const got = waitFor(c, 'news');
    const res = await fetch(`${worker.url}/api/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'traced', event: 'news', data: { n: 1 } }),
    });
    expect(res.status).toBe(202);
    expect(await got).toEqual({ n: 1 });
    // walk from the gateway's emit span up to the root: every hop is in the same trace
    const chainOf = (emit: OtlpSpan) => {
      const byId = new Map(receiver.spans.filter((s) => s.traceId === emit.traceId).map((s) => [s.spanId, s]));
      const chain: OtlpSpan[] = [];
      for (let s: OtlpSpan | undefined = emit; s; s = s.parentSpanId ? byId.get(s.parentSpanId) : undefined) chain.unshift(s);
      return chain;
    };
    let chain: OtlpSpan[] = [];
    // spans arrive in batches from two processes: wait until the whole chain is in
    await until(
      () => receiver.spans.filter((s) => s.name === 'adapter emit').some((e) => (chain = chainOf(e)).length >= 3),
      15000,
      'the whole trace',
    ).catch(() => undefined);
    expect(chain.map((s) => s.name)).toEqual(['POST /api/v1/publish', 'outbox deliver', 'adapter emit']);
    expect(chain.map((s) => s.service)).toEqual(['realtime-worker', 'realtime-worker', 'realtime-gateway']);
  });

  test('client events and handshakes get spans on the gateway', async () => {
    const c = await connect(procs[0].url, { token: await token('evented') });
    await c.emitWithAck('get-room-members', 'traced');
    await until(() => receiver.spans.some((s) => s.name === 'socket.io event get-room-members'), 15000, 'event span');
    expect(receiver.spans.some((s) => s.name === 'socket.io handshake' && s.service === 'realtime-gateway')).toBe(true);
  });
});
