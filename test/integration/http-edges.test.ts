import { execFile } from 'child_process';
import fs from 'fs';
import net from 'net';
import { promisify } from 'util';
import { closeClients, connect, metricValue, RunningGateway, startGateways, startWorker, token, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// The HTTP edges of both services (OPERATIONS.md, "HTTP edges"; PROTOCOL.md, Health and metrics):
// upgrade offers other than Socket.IO's websocket are served as HTTP/1.1, stalled requests are cut
// within seconds, an unauthenticated publish is answered and closed before its body is read, the
// public port caps its connections, an aborted publish is no error, /dev/* exists only with
// DEV_LOGIN, and CORS gives credentials only to configured origins.

jest.setTimeout(60000);

const KEY = 'http-edges-key-0123456789';
const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n';

interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Complete HTTP/1.1 responses at the start of `text` (content-length or chunked bodies). */
function responses(text: string): Response[] {
  const out: Response[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    let body = rest.slice(end + 4);
    if (headers['transfer-encoding'] === 'chunked') {
      let decoded = '';
      for (;;) {
        const nl = body.indexOf('\r\n');
        if (nl < 0) return out;
        const size = parseInt(body.slice(0, nl), 16);
        if (body.length < nl + 2 + size + 2) return out;
        decoded += body.slice(nl + 2, nl + 2 + size);
        body = body.slice(nl + 2 + size + 2);
        if (size === 0) break;
      }
      out.push({ status: Number(statusLine.split(' ')[1]), headers, body: decoded });
      rest = body;
    } else {
      const len = Number(headers['content-length'] ?? 0);
      if (Buffer.byteLength(body, 'latin1') < len) return out;
      out.push({ status: Number(statusLine.split(' ')[1]), headers, body: body.slice(0, len) });
      rest = body.slice(len);
    }
  }
}

interface Raw {
  text: string;
  /** Milliseconds from connect to the server closing the connection, or undefined if it stayed open. */
  closedAfterMs?: number;
  /** Milliseconds from connect to the first byte received. */
  firstByteMs?: number;
  responses: Response[];
}

/**
 * Writes `chunks` on a fresh loopback connection (`gapMs` apart; `trickle` then keeps writing it
 * every `gapMs`) and collects the answer until `done(responses)` holds, the server closes, or `waitMs`.
 */
function raw(
  port: number,
  chunks: string[],
  opts: { waitMs?: number; gapMs?: number; trickle?: string; done?: (r: Response[]) => boolean } = {},
): Promise<Raw> {
  const { waitMs = 3000, gapMs = 100 } = opts;
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let firstByteMs: number | undefined;
    const timers: NodeJS.Timeout[] = [];
    const finish = (closedAfterMs?: number) => {
      for (const t of timers) clearTimeout(t);
      clearInterval(trickle);
      s.destroy();
      resolve({ text, closedAfterMs, firstByteMs, responses: responses(text) });
    };
    s.on('error', () => undefined); // a reset after the server closed: the close below reports it
    s.on('data', (d) => {
      firstByteMs ??= Date.now() - t0;
      text += d.toString('latin1');
      if (opts.done?.(responses(text))) finish();
    });
    s.on('close', () => finish(Date.now() - t0));
    chunks.forEach((c, i) => timers.push(setTimeout(() => s.writable && s.write(c), i * gapMs)));
    let trickle: NodeJS.Timeout | undefined;
    if (opts.trickle !== undefined)
      timers.push(setTimeout(() => (trickle = setInterval(() => s.writable && s.write(opts.trickle!), gapMs)), chunks.length * gapMs));
    timers.push(setTimeout(() => finish(), waitMs));
  });
}

const get = (p: string, extra = '') => `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
const post = (p: string, body: string, extra = '') =>
  `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
const publishBody = JSON.stringify({ room: 'edges', event: 'news', data: { via: 'h2c' } });
const auth = (key: string) => `Authorization: Bearer ${key}\r\n`;

describe('HTTP edges of the gateway and the worker', () => {
  let redis: TestRedis;
  let gw: RunningGateway;
  let worker: Awaited<ReturnType<typeof startWorker>>;
  const stops: Array<() => Promise<void>> = [];
  const start = async (env: Record<string, string>) => {
    const c = await startGateways(1, { REDIS_URL: redis.url, ...env });
    stops.push(c.stop);
    return c.gateways[0];
  };

  beforeAll(async () => {
    redis = await startRedis();
    gw = await start({ API_KEYS: KEY, RATE_LIMIT_EVENTS_PER_SECOND: '0' });
    worker = await startWorker({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: gw.cfg.keyPrefix, API_KEYS: KEY, POD_NAME: 'edges-worker' });
    stops.push(worker.stop);
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    for (const s of stops.reverse()) await s();
    await redis?.stop();
  });

  describe('an upgrade offer other than websocket on /socket.io/ is served as HTTP/1.1', () => {
    // Each request carries the offer `curl --http2` and the JDK HttpClient send; a second, plain
    // request follows on the same connection (keep-alive survives). Before: no answer, closed after 1 s.
    const cases: Array<[string, () => number, string, number, (r: Response) => void]> = [
      ['gateway PORT /healthz', () => gw.port, get('/healthz', H2C), 200, (r) => expect(JSON.parse(r.body)).toEqual({ ok: true })],
      ['gateway PORT /readyz', () => gw.port, get('/readyz', H2C), 200, (r) => expect(JSON.parse(r.body)).toMatchObject({ ok: true })],
      ['gateway PORT / (demo page)', () => gw.port, get('/', H2C), 200, (r) => expect(r.headers['content-type']).toMatch(/text\/html/)],
      ['gateway PORT unknown route', () => gw.port, get('/nope', H2C), 404, () => undefined],
      [
        'gateway PORT publish API',
        () => gw.port,
        post('/api/v1/publish', publishBody, auth(KEY) + H2C),
        202,
        (r) => expect(JSON.parse(r.body)).toEqual({ id: expect.any(String) }),
      ],
      [
        'gateway PORT Socket.IO long-polling handshake',
        () => gw.port,
        get('/socket.io/?EIO=4&transport=polling', H2C),
        200,
        (r) => expect(r.body).toMatch(/^0\{"sid":/),
      ],
      [
        'gateway PORT websocket offer outside /socket.io/',
        () => gw.port,
        get(
          '/healthz',
          'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
        ),
        200,
        () => undefined,
      ],
      ['gateway METRICS_PORT /metrics', () => gw.metricsPort, get('/metrics', H2C), 200, (r) => expect(r.body).toMatch(/realtime_/)],
      ['gateway METRICS_PORT /healthz', () => gw.metricsPort, get('/healthz', H2C), 200, () => undefined],
      ['worker PORT /healthz', () => worker.port, get('/healthz', H2C), 200, () => undefined],
      ['worker PORT publish API', () => worker.port, post('/api/v1/publish', publishBody, auth(KEY) + H2C), 202, () => undefined],
      ['worker METRICS_PORT /metrics', () => worker.metricsPort, get('/metrics', H2C), 200, (r) => expect(r.body).toMatch(/realtime_/)],
    ];
    test.each(cases)('%s', async (_name, port, request, status, check) => {
      const r = await raw(port(), [request, get('/healthz')], { done: (rs) => rs.length >= 2 });
      expect(r.responses.map((x) => x.status)).toEqual([status, 200]);
      expect(r.text.startsWith('HTTP/1.1 ')).toBe(true);
      expect(r.firstByteMs).toBeLessThan(900); // engine.io used to close these after 1 s without a byte
      check(r.responses[0]);
    });

    test("Socket.IO's own websocket upgrade still works (raw 101, and a client over websocket)", async () => {
      const r = await raw(
        gw.port,
        [
          get(
            '/socket.io/?EIO=4&transport=websocket',
            'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
          ),
        ],
        { waitMs: 2000, done: () => false },
      );
      expect(r.text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
      const s = await connect(gw.url, { token: await token('ws-user') }, { transports: ['websocket'] });
      expect(s.connected).toBe(true);
    });

    const curl = ['/usr/bin/curl', '/bin/curl', '/usr/local/bin/curl'].find((p) => fs.existsSync(p));
    (curl ? test : test.skip)('curl --http2 against http:// gets HTTP/1.1 answers from every port', async () => {
      const run = async (url: string, args: string[] = []) => {
        const { stdout } = await promisify(execFile)(curl!, [
          '--http2',
          '-s',
          '-o',
          '/dev/null',
          '--max-time',
          '5',
          '-w',
          '%{http_code} %{http_version} %{time_total}',
          ...args,
          url,
        ]);
        const [code, version, seconds] = stdout.trim().split(' ');
        return { code: Number(code), version, seconds: Number(seconds) };
      };
      const publishArgs = ['-H', `Authorization: Bearer ${KEY}`, '-H', 'content-type: application/json', '-d', publishBody];
      const results = [
        await run(`http://127.0.0.1:${gw.port}/healthz`),
        await run(`http://127.0.0.1:${gw.port}/api/v1/publish`, publishArgs),
        await run(`http://127.0.0.1:${gw.metricsPort}/metrics`),
        await run(`http://127.0.0.1:${worker.port}/api/v1/publish`, publishArgs),
        await run(`http://127.0.0.1:${worker.metricsPort}/healthz`),
      ];
      expect(results.map((r) => [r.code, r.version])).toEqual([
        [200, '1.1'],
        [202, '1.1'],
        [200, '1.1'],
        [202, '1.1'],
        [200, '1.1'],
      ]);
      for (const r of results) expect(r.seconds).toBeLessThan(0.9);
    });
  });

  describe('stalled requests are cut within seconds', () => {
    let quick: RunningGateway;
    beforeAll(async () => {
      quick = await start({ API_KEYS: KEY, HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '2000' });
    });
    // (0 when the metric does not exist yet: the timing assertions below then say what went wrong)
    const closed = (reason: string, g = quick) =>
      metricValue(g.metrics, 'realtime_http_connections_closed_total', { reason }).catch(() => 0);
    const publishes = (status: string) => metricValue(quick.metrics, 'realtime_api_publish_requests_total', { status });

    test('headers that trickle, and a connection that sends nothing, are answered 408 and closed after HTTP_HEADERS_TIMEOUT_MS', async () => {
      const before = await closed('timeout');
      const [slowloris, silent] = await Promise.all([
        raw(quick.port, ['GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'], { trickle: 'X-Slow: 1\r\n', gapMs: 200, waitMs: 8000 }),
        raw(quick.port, [], { waitMs: 8000 }),
      ]);
      for (const r of [slowloris, silent]) {
        expect(r.closedAfterMs).toBeGreaterThanOrEqual(900);
        expect(r.closedAfterMs).toBeLessThan(2500); // 1 s + the check interval (250 ms here)
        expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
      }
      expect(await closed('timeout')).toBe(before + 2);
    });

    test('a publish whose body trickles is cut after HTTP_REQUEST_TIMEOUT_MS: 408, counted as 408, not 500', async () => {
      const before = { s408: await publishes('408'), s500: await publishes('500'), timeout: await closed('timeout') };
      const head = `POST /api/v1/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth(KEY)}Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{`;
      const r = await raw(quick.port, [head], { trickle: ' ', gapMs: 200, waitMs: 8000 });
      expect(r.closedAfterMs).toBeGreaterThanOrEqual(1900);
      expect(r.closedAfterMs).toBeLessThan(3500);
      expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
      await until(async () => (await publishes('408')) === before.s408 + 1, 3000, 'the 408 to be counted');
      expect(await publishes('500')).toBe(before.s500);
      expect(await closed('timeout')).toBe(before.timeout + 1);
    });

    test('at the defaults (10 s headers), a slowloris connection is cut in about 10 s', async () => {
      const r = await raw(gw.port, ['GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'], {
        trickle: 'X-Slow: 1\r\n',
        gapMs: 500,
        waitMs: 20000,
      });
      expect(r.closedAfterMs).toBeGreaterThanOrEqual(9900);
      expect(r.closedAfterMs).toBeLessThan(12000);
      expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    }, 30000);

    test('waiting for an answer is not receiving a request: long-polling and websocket clients stay connected across idle periods far longer than the timeouts', async () => {
      // Node measures requestTimeout "for receiving the entire request from the client": a
      // long-polling GET is complete once its headers are in, so the 6 s it waits here for data
      // (up to pingInterval, 25 s, in production) is not counted; a websocket leaves the parser.
      const rx = await connect(quick.url, { token: await token('poller') }, { transports: ['polling'] });
      const tx = await connect(quick.url, { token: await token('ws-sender') }, { transports: ['websocket'] });
      const drops: string[] = [];
      for (const s of [rx, tx]) s.on('disconnect', (reason) => drops.push(reason));
      expect(await rx.emitWithAck('join-room', 'idle')).toMatchObject({ ok: true });
      expect(await tx.emitWithAck('join-room', 'idle')).toMatchObject({ ok: true });
      await new Promise((r) => setTimeout(r, 6000)); // 3x HTTP_REQUEST_TIMEOUT_MS, 6x HTTP_HEADERS_TIMEOUT_MS
      expect(drops).toEqual([]);
      expect(rx.io.engine.transport.name).toBe('polling');
      const got = waitFor(rx, 'message', (m: { text: string }) => m.text === 'after the idle period');
      expect(await tx.emitWithAck('message', { roomId: 'idle', text: 'after the idle period' })).toMatchObject({ ok: true });
      await got;
      const back = waitFor(tx, 'message', (m: { text: string }) => m.text === 'and back');
      expect(await rx.emitWithAck('message', { roomId: 'idle', text: 'and back' })).toMatchObject({ ok: true });
      await back;
      expect(drops).toEqual([]);
    });
  });

  describe('the publish API answers an unauthenticated request before its body and closes the connection', () => {
    const trickling = (port: number, key: string) =>
      raw(
        port,
        [
          `POST /api/v1/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth(key)}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`,
        ],
        {
          trickle: ' ',
          gapMs: 100,
          waitMs: 3000,
        },
      );

    test('100 POSTs with a bad key whose bodies trickle: each answered 401 at once, none still open after 3 s', async () => {
      const before = await metricValue(gw.metrics, 'realtime_api_publish_requests_total', { status: '401' });
      const rs = await Promise.all(Array.from({ length: 100 }, () => trickling(gw.port, 'not-the-key-0123456789')));
      const open = rs.filter((r) => r.closedAfterMs === undefined).length;
      expect(open).toBe(0);
      for (const r of rs) {
        expect(r.closedAfterMs).toBeLessThan(1500);
        expect(r.responses[0]).toMatchObject({ status: 401, headers: { connection: 'close' } });
        expect(JSON.parse(r.responses[0].body).error.code).toBe('unauthorized');
      }
      expect(await metricValue(gw.metrics, 'realtime_api_publish_requests_total', { status: '401' })).toBe(before + 100);
    });

    test('the same when API_KEYS is unset, on the worker, and for a declared body over the limit (413)', async () => {
      const off = await start({});
      const results = await Promise.all([
        ...Array.from({ length: 10 }, () => trickling(off.port, KEY)),
        ...Array.from({ length: 10 }, () => trickling(worker.port, 'not-the-key-0123456789')),
      ]);
      for (const r of results) {
        expect(r.closedAfterMs).toBeLessThan(1500);
        expect(r.responses[0]).toMatchObject({ status: 401, headers: { connection: 'close' } });
      }
      const big = await trickling(gw.port, KEY); // Content-Length 100000 > the body limit: 413 before reading
      expect(big.closedAfterMs).toBeLessThan(1500);
      expect(big.responses[0]).toMatchObject({ status: 413, headers: { connection: 'close' } });
    });

    test('a good key keeps its keep-alive connection', async () => {
      const r = await raw(gw.port, [post('/api/v1/publish', publishBody, auth(KEY)), get('/healthz')], { done: (rs) => rs.length >= 2 });
      expect(r.responses.map((x) => x.status)).toEqual([202, 200]);
      expect(r.closedAfterMs).toBeUndefined();
    });
  });

  test('HTTP_MAX_CONNECTIONS caps the connections of the public port (closed at accept, counted); the metrics port is not capped', async () => {
    const capped = await start({ HTTP_MAX_CONNECTIONS: '3' });
    const held = await Promise.all(
      Array.from(
        { length: 3 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(capped.port, '127.0.0.1', () => resolve(s));
            s.on('error', () => undefined);
          }),
      ),
    );
    await until(async () => (await new Promise<number>((r) => capped.gateway.http.getConnections((_e, n) => r(n)))) === 3);
    const refused = await raw(capped.port, [get('/healthz')], { waitMs: 3000 });
    expect(refused.text).toBe('');
    expect(refused.closedAfterMs).toBeLessThan(1000);
    expect(await metricValue(capped.metrics, 'realtime_http_connections_closed_total', { reason: 'max_connections' })).toBe(1);
    const metricsPortOk = await raw(capped.metricsPort, [get('/healthz')], { done: (rs) => rs.length >= 1 });
    expect(metricsPortOk.responses[0]?.status).toBe(200);
    held[0].destroy();
    await until(async () => (await new Promise<number>((r) => capped.gateway.http.getConnections((_e, n) => r(n)))) === 2);
    const again = await raw(capped.port, [get('/healthz')], { done: (rs) => rs.length >= 1 });
    expect(again.responses[0]?.status).toBe(200);
    for (const s of held) s.destroy();
    expect(gw.cfg.httpMaxConnections).toBe(100000); // the default
  });

  test('a publish the client aborts mid-body is counted as 499, not 500, and not logged as an error', async () => {
    const errors = jest.spyOn(gw.gateway.ctx.logger, 'error');
    try {
      const m = (status: string) => metricValue(gw.metrics, 'realtime_api_publish_requests_total', { status });
      const before = { s499: await m('499'), s500: await m('500') };
      const head = `POST /api/v1/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth(KEY)}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"room":`;
      await raw(gw.port, [head], { waitMs: 300 }); // then the client goes away
      await until(async () => (await m('499')) === before.s499 + 1, 3000, 'the aborted publish to be counted');
      expect(await m('500')).toBe(before.s500);
      expect(errors).not.toHaveBeenCalled();
    } finally {
      errors.mockRestore();
    }
  });

  describe('/dev/* exists only with DEV_LOGIN', () => {
    test('DEV_LOGIN off (the default): /dev/config and /dev/token answer 404 exactly like an unknown route; the demo page is served', async () => {
      const unknown = await raw(gw.port, [get('/no-such-route')], { done: (rs) => rs.length >= 1 });
      const config = await raw(gw.port, [get('/dev/config')], { done: (rs) => rs.length >= 1 });
      const tok = await raw(gw.port, [post('/dev/token', '{"userId":"mallory"}')], { done: (rs) => rs.length >= 1 });
      for (const r of [config, tok]) {
        expect(r.responses[0].status).toBe(404);
        expect(r.responses[0].body).toBe(unknown.responses[0].body);
      }
      expect(JSON.parse(unknown.responses[0].body)).toEqual({ error: { code: 'not_found', message: 'no such route' } });
      const page = await raw(gw.port, [get('/')], { done: (rs) => rs.length >= 1 });
      expect(page.responses[0].status).toBe(200);
      expect(page.responses[0].body).toContain("fetch('/dev/config')");
    });

    test('DEV_LOGIN=true: /dev/config describes the login and /dev/token signs a token that connects', async () => {
      const dev = await start({ DEV_LOGIN: 'true' });
      const config = await raw(dev.port, [get('/dev/config')], { done: (rs) => rs.length >= 1 });
      expect(JSON.parse(config.responses[0].body)).toEqual({ devLogin: true, authMode: 'jwt' });
      const tok = await raw(dev.port, [post('/dev/token', '{"userId":"dev-alice"}')], { done: (rs) => rs.length >= 1 });
      const body = JSON.parse(tok.responses[0].body) as { token: string; userId: string };
      expect(body.userId).toBe('dev-alice');
      const s = await connect(dev.url, { token: body.token });
      expect(s.connected).toBe(true);
    });
  });

  describe('CORS of the Socket.IO endpoints', () => {
    const handshake = (port: number, origin?: string) =>
      raw(port, [get('/socket.io/?EIO=4&transport=polling', origin ? `Origin: ${origin}\r\n` : '')], { done: (rs) => rs.length >= 1 });
    const preflight = (port: number, origin: string) =>
      raw(
        port,
        [
          `OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${origin}\r\nAccess-Control-Request-Method: POST\r\n\r\n`,
        ],
        { done: (rs) => rs.length >= 1 },
      );

    test('CORS_ORIGINS=* (the default): Access-Control-Allow-Origin: *, never an origin reflected, never credentials', async () => {
      for (const origin of ['https://evil.example', undefined]) {
        const r = (await handshake(gw.port, origin)).responses[0];
        expect(r.status).toBe(200);
        expect(r.headers['access-control-allow-origin']).toBe('*');
        expect(r.headers['access-control-allow-credentials']).toBeUndefined();
      }
      const p = (await preflight(gw.port, 'https://evil.example')).responses[0];
      expect(p.status).toBe(204);
      expect(p.headers['access-control-allow-origin']).toBe('*');
      expect(p.headers['access-control-allow-credentials']).toBeUndefined();
    });

    test('CORS_ORIGINS=<list>: only those origins are reflected, with credentials', async () => {
      const listed = await start({ CORS_ORIGINS: 'https://app.example,https://admin.example' });
      const ok = (await handshake(listed.port, 'https://app.example')).responses[0];
      expect(ok.headers['access-control-allow-origin']).toBe('https://app.example');
      expect(ok.headers['access-control-allow-credentials']).toBe('true');
      const other = (await handshake(listed.port, 'https://admin.example')).responses[0];
      expect(other.headers['access-control-allow-origin']).toBe('https://admin.example');
      for (const origin of ['https://evil.example', undefined]) {
        const r = (await handshake(listed.port, origin)).responses[0];
        expect(r.status).toBe(200); // same-origin and non-browser clients still connect
        expect(r.headers['access-control-allow-origin']).toBeUndefined();
      }
      const p = (await preflight(listed.port, 'https://evil.example')).responses[0];
      expect(p.headers['access-control-allow-origin']).toBeUndefined();
    });
  });
});
