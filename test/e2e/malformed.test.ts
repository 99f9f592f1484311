import WebSocket from 'ws';
import { token as signToken } from '../helpers/cluster';
import { Cluster, httpGet, scrapeGateways, useCluster } from './cluster';
import { ask, askRetry, closeAll, connectClient, E2EClient, FAST_RECONNECT, request, sleep, until } from './clients';
import { record, summary } from './results';

// 10,000 malformed inputs through the balancer, over raw websockets and HTTP long-polling: bad
// Engine.IO and Socket.IO frames, events with wrong types, huge payloads, invalid tokens, unknown
// or forbidden namespaces, random bytes. No process crashes (every pid alive, same pids), every
// well-behaved client stays connected and keeps exchanging messages, and the errors are counted
// in the gateways' metrics.

jest.setTimeout(240000);

const TOTAL = 10000;
const PARALLEL = 24;

/** Deterministic pseudo-random numbers (mulberry32), so a failing input can be found again. */
function rng(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(20261126);
const pick = <T>(list: T[]): T => list[Math.floor(rand() * list.length)];
const randomText = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(rand() * 95))).join('');
const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

interface Stats {
  sent: Record<string, number>;
  /** `44` CONNECT_ERROR answers by message. */
  connectErrors: Record<string, number>;
  /** Error acks by code. */
  errorAcks: Record<string, number>;
  /** Events sent without an ack (the gateway drops and counts them). */
  noAckEvents: number;
  httpStatus: Record<string, number>;
  closedByServer: number;
  clientErrors: number;
}

interface RawWs {
  ws: WebSocket;
  inbox: string[];
  closed: Promise<void>;
  isClosed(): boolean;
  next(pred: (m: string) => boolean, ms?: number): Promise<string | undefined>;
}

/** A raw Engine.IO websocket through the balancer; resolves once the open packet arrived. */
function rawWs(c: Cluster, stats: Stats): Promise<RawWs> {
  const url = `${c.baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10000 });
    const inbox: string[] = [];
    const waiters: Array<() => void> = [];
    let closed = false;
    const closedP = new Promise<void>((r) =>
      ws.on('close', () => {
        closed = true;
        stats.closedByServer++;
        waiters.splice(0).forEach((w) => w());
        r();
      }),
    );
    ws.on('error', (e) => {
      stats.clientErrors++;
      if (ws.readyState !== WebSocket.OPEN) reject(e);
    });
    ws.on('message', (d, isBinary) => {
      const m = isBinary ? '<binary>' : d.toString();
      if (m === '2') ws.send('3');
      inbox.push(m);
      waiters.splice(0).forEach((w) => w());
    });
    const raw: RawWs = {
      ws,
      inbox,
      closed: closedP,
      isClosed: () => closed,
      async next(pred, ms = 5000) {
        const end = Date.now() + ms;
        for (;;) {
          const i = inbox.findIndex(pred);
          if (i >= 0) return inbox.splice(i, 1)[0];
          if (closed || Date.now() > end) return undefined;
          await new Promise<void>((r) => {
            const t = setTimeout(r, Math.max(1, end - Date.now()));
            waiters.push(() => (clearTimeout(t), r()));
          });
        }
      },
    };
    raw.next((m) => m.startsWith('0{'), 10000).then((open) => (open ? resolve(raw) : reject(new Error('no open packet'))), reject);
  });
}

/** rawWs with up to 3 attempts (a connection refused under load is not an input the server saw). */
async function openWs(c: Cluster, stats: Stats): Promise<RawWs | undefined> {
  for (let i = 0; i < 3; i++) {
    const r = await rawWs(c, stats).catch(() => undefined);
    if (r) return r;
    await sleep(50);
  }
  return undefined;
}

const count = (rec: Record<string, number>, key: string, n = 1) => (rec[key] = (rec[key] ?? 0) + n);

/** Sends one frame that breaks the connection (or not), then lets the server act on it. */
async function oneShot(c: Cluster, stats: Stats, kind: string, frame: string | Buffer): Promise<void> {
  const r = await openWs(c, stats);
  if (!r) return;
  count(stats.sent, kind);
  r.ws.send(frame);
  await Promise.race([r.closed, sleep(100)]);
  if (!r.isClosed()) r.ws.terminate();
}

function connectErrorOf(m: string): string | undefined {
  const x = /^44(\/[^,]*,)?(.*)$/.exec(m);
  if (!x) return undefined;
  try {
    return (JSON.parse(x[2]) as { message?: string }).message ?? '?';
  } catch {
    return '?';
  }
}

describe('10,000 malformed inputs over websocket and long-polling', () => {
  const cluster = useCluster({ name: 'malformed', gateways: 3, workers: 1 });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('no crash, well-behaved clients keep working, errors counted in metrics', async () => {
    const c = cluster();
    const tag = Date.now().toString(36);
    const room = `probe-${tag}`;
    const valid = await c.token(`fuzz-${tag}`);
    const badTokens = [
      'garbage',
      'a.b.c',
      '',
      'x'.repeat(10000),
      await signToken(`fuzz-${tag}`, {}, { secret: 'a-completely-different-secret-of-32-bytes!!' }),
      await signToken(`fuzz-${tag}`, {}, { secret: c.jwtSecret, expiresIn: Math.floor(Date.now() / 1000) - 60 }),
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 })}.`,
      `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 600 })}.c2ln`,
    ];

    // Well-behaved probes: websocket and long-polling, in one room, exchanging messages all along.
    const probes: E2EClient[] = [];
    for (let i = 0; i < 4; i++)
      probes.push(
        await connectClient(c, `probe-${tag}-${i}`, {
          ...(c.local ? {} : FAST_RECONNECT),
          transports: i % 2 ? ['polling'] : ['websocket'],
        }),
      );
    for (const p of probes) expect(await ask(p.socket, 'join-room', room)).toMatchObject({ ok: true });
    const probeSent: string[] = [];
    const probeFailed: unknown[] = [];
    const probeSend = async (text: string) => {
      const a = await (c.local ? ask : askRetry)(probes[probeSent.length % probes.length].socket, 'message', { roomId: room, text });
      if (a.ok) probeSent.push(a.id as string);
      else probeFailed.push(a);
    };
    for (let i = 0; i < 4; i++) await probeSend(`before ${i}`);
    await until(() => probes.every((p) => probeSent.every((id) => p.counts.has(id))), 10000, 'probe messages before');
    let probing = true;
    const prober = (async () => {
      for (let i = 0; probing && i < 2000; i++) {
        await probeSend(`during ${i}`);
        await sleep(200);
      }
    })();

    const pidsBefore = c.pids();
    const metric = async () =>
      c.local
        ? {
            notOk: await scrapeGateways(c, 'realtime_gateway_events_received_total', (l) => l.outcome !== 'ok'),
            auth: await scrapeGateways(c, 'realtime_gateway_auth_failures_total'),
            requestErrors: await scrapeGateways(c, 'realtime_gateway_request_errors_total'),
          }
        : { notOk: 0, auth: 0, requestErrors: 0 };
    const m0 = await metric();

    const stats: Stats = { sent: {}, connectErrors: {}, errorAcks: {}, noAckEvents: 0, httpStatus: {}, closedByServer: 0, clientErrors: 0 };
    const tasks: Array<() => Promise<void>> = [];
    const plan: Record<string, number> = {};
    const add = (kind: string, inputs: number, task: () => Promise<void>) => {
      plan[kind] = (plan[kind] ?? 0) + inputs;
      tasks.push(task);
    };

    // 1. Bad Engine.IO packets (each ends its connection), 1,500.
    const engineFrames = () =>
      pick([
        '9',
        'x',
        '',
        '7abc',
        '5',
        '1',
        '4',
        '8{}',
        '0{"sid":"forged"}',
        '2probe',
        '3',
        randomText(1 + Math.floor(rand() * 64)),
        `b${randomText(20)}`,
      ]);
    for (let i = 0; i < 1500; i++) add('engine.io garbage', 1, () => oneShot(c, stats, 'engine.io garbage', engineFrames()));
    // 2. Bad Socket.IO packets (each ends its connection), 1,500.
    const deep = '42["message",' + '['.repeat(20000) + ']'.repeat(20000) + ']';
    const sioFrames = () =>
      pick([
        '42["message"',
        '44{bad',
        '42{"a":1}',
        '42[]',
        '42[1]',
        '42["connect"]',
        '42["disconnect",1]',
        '43',
        '49',
        '4zz',
        '421x',
        '40"string auth"',
        '40[1,2]',
        '451-["message",{"_placeholder":true,"num":0}]',
        '45["x"]',
        '42["message",{"roomId":"r"}]', // an event before connecting to the namespace
        deep,
        `4${randomText(1 + Math.floor(rand() * 200))}`,
      ]);
    for (let i = 0; i < 1500; i++) add('socket.io garbage', 1, () => oneShot(c, stats, 'socket.io garbage', sioFrames()));
    // 3. Invalid tokens: 40 connections x 50 CONNECT attempts, each answered connect_error.
    const authAttempts = () =>
      pick([
        ...badTokens.map((t) => `40${JSON.stringify({ token: t })}`),
        '40{"token":123}',
        '40{"token":null}',
        '40{"token":{"nested":true}}',
        '40{}',
        '40{"userId":"mallory"}',
        `40${JSON.stringify({ token: valid + 'x' })}`,
      ]);
    for (let k = 0; k < 40; k++)
      add('invalid token', 50, async () => {
        const r = await openWs(c, stats);
        if (!r) return;
        for (let i = 0; i < 50 && !r.isClosed(); i++) {
          r.ws.send(authAttempts());
          count(stats.sent, 'invalid token');
          const ans = await r.next((m) => m.startsWith('4'), 5000);
          if (ans) count(stats.connectErrors, connectErrorOf(ans) ?? `other: ${ans.slice(0, 20)}`);
        }
        r.ws.close();
      });
    // 4. Unknown and forbidden namespaces: 20 connections x 50.
    const nsAttempts = () =>
      pick([
        `40/nope,${JSON.stringify({ token: valid })}`,
        `40/${randomText(8).replace(/[,\\"/]/g, '_')},{}`,
        `40/workspace-${Math.floor(rand() * 1e6)},${JSON.stringify({ token: valid })}`,
        `40/admin,${JSON.stringify({ token: valid })}`,
        `40/admin,${JSON.stringify({ token: 'garbage' })}`,
      ]);
    for (let k = 0; k < 20; k++)
      add('bad namespace', 50, async () => {
        const r = await openWs(c, stats);
        if (!r) return;
        for (let i = 0; i < 50 && !r.isClosed(); i++) {
          r.ws.send(nsAttempts());
          count(stats.sent, 'bad namespace');
          const ans = await r.next((m) => m.startsWith('4'), 5000);
          if (ans) count(stats.connectErrors, connectErrorOf(ans) ?? `other: ${ans.slice(0, 20)}`);
        }
        r.ws.close();
      });
    // 5. Events with wrong types, reserved rooms, unknown names, too large, with and without acks,
    //    on authenticated sockets: 40 connections x 75 (under the per-socket rate limit).
    const badArgs = (): unknown[] =>
      pick([
        ['message', 123],
        ['message', null],
        ['message', { roomId: 5 }],
        ['message', { roomId: 'ok', text: { a: 1 } }],
        ['message', { roomId: '_reserved', text: 'x' }],
        ['message', { roomIds: Array.from({ length: 300 }, (_, i) => `r${i}`), text: 'x' }],
        ['message', { roomId: 'a'.repeat(300), text: 'x' }],
        ['message', { roomId: 'fine', text: 'x'.repeat(20000) }],
        ['message', 'just a string'],
        ['join-room', 42],
        ['join-room', 'presence:someone'],
        ['join-room', 'user:bob'],
        ['join-room', 'bad room!'],
        ['join-room', ''],
        ['leave-room', {}],
        ['get-room-members', []],
        ['get-presence', 'not-an-array'],
        ['get-presence', Array.from({ length: 1500 }, (_, i) => `u${i}`)],
        ['presence:subscribe', [1, 2, 3]],
        ['presence:unsubscribe', null],
        ['direct-message', { toUserId: '' }],
        ['direct-message', { toUserId: 'x', text: 'y'.repeat(20000) }],
        ['direct-message', 'bob'],
        ['inbox:ack', { upTo: 'not-an-id' }],
        ['inbox:ack', 7],
        ['unknown-event', 1],
        ['admin:stats'],
        ['__proto__', {}],
        ['constructor'],
        ['hasOwnProperty', 'x'],
      ]);
    for (let k = 0; k < 40; k++)
      add('bad event', 75, async () => {
        const r = await openWs(c, stats);
        if (!r) return;
        r.ws.send(`40${JSON.stringify({ token: valid })}`);
        const ok = await r.next((m) => m.startsWith('40'), 10000);
        if (!ok) return void r.ws.terminate();
        const pending = new Set<number>();
        for (let i = 0; i < 75 && !r.isClosed(); i++) {
          const args = badArgs();
          const withAck = i === 74 || rand() < 0.7;
          if (withAck) pending.add(i);
          else stats.noAckEvents++;
          r.ws.send(`42${withAck ? i : ''}${JSON.stringify(args)}`);
          count(stats.sent, 'bad event');
        }
        const end = Date.now() + 10000;
        while (pending.size && Date.now() < end && !r.isClosed()) {
          const ack = await r.next((m) => /^43\d+\[/.test(m), 2000);
          if (!ack) continue;
          const id = Number(/^43(\d+)/.exec(ack)![1]);
          pending.delete(id);
          const body = JSON.parse(ack.slice(ack.indexOf('[')))[0] as { ok: boolean; error?: { code: string } };
          count(stats.errorAcks, body.ok ? 'ok' : body.error!.code);
        }
        r.ws.close();
      });
    // 6. Frames beyond the 64 KB limit (text and binary), 50; 7. random bytes as binary frames, 450.
    for (let i = 0; i < 50; i++)
      add('huge frame', 1, () =>
        oneShot(
          c,
          stats,
          'huge frame',
          i % 2 ? randomBytes(100 * 1024) : `42["message",{"roomId":"r","text":"${'a'.repeat(100 * 1024)}"}]`,
        ),
      );
    for (let i = 0; i < 450; i++)
      add('random bytes', 1, () => oneShot(c, stats, 'random bytes', randomBytes(1 + Math.floor(rand() * 512))));
    // 8. Long-polling: bad handshakes, unknown sessions, garbage and oversized bodies, bad tokens: 500 requests.
    const base = `${c.baseUrl}/socket.io/`;
    const pollingBad = [
      () => request('GET', `${base}?EIO=5&transport=polling`),
      () => request('GET', `${base}?EIO=4&transport=carrier-pigeon`),
      () => request('GET', `${base}?EIO=4&transport=polling&sid=${encodeURIComponent(randomText(20))}`),
      () => request('POST', `${base}?EIO=4&transport=polling&sid=nope`, '40{}'),
      () => request('GET', `${base}?EIO=4`),
      () => request('GET', `${base}?transport=polling`),
      () => request('PUT', `${base}?EIO=4&transport=polling`, 'x'),
    ];
    for (let k = 0; k < 100; k++)
      add('polling garbage', 5, async () => {
        // two stateless bad requests, then a session (handshake not counted) fed three bad bodies
        for (let i = 0; i < 2; i++) {
          const r = await pick(pollingBad)();
          count(stats.httpStatus, String(r.status));
          count(stats.sent, 'polling garbage');
        }
        const hs = await request('GET', `${base}?EIO=4&transport=polling`);
        if (hs.status !== 200) return void count(stats.httpStatus, `handshake ${hs.status}`);
        const sid = JSON.parse(hs.body.slice(1)).sid as string;
        const cookie = String(hs.headers['set-cookie']?.[0] ?? '').split(';')[0];
        const url = `${base}?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
        const headers: Record<string, string> = { 'content-type': 'text/plain;charset=UTF-8', ...(cookie ? { cookie } : {}) };
        const bodies = [
          `40${JSON.stringify({ token: pick(badTokens) })}`,
          'x'.repeat(100 * 1024),
          pick(['9zz', '4{', randomText(40), '42["message",1]']),
        ];
        for (const body of bodies) {
          const r = await request('POST', url, body, headers);
          count(stats.httpStatus, String(r.status));
          count(stats.sent, 'polling garbage');
        }
        await request('GET', url, undefined, headers, 2000); // collect what the server answered (connect_error or close)
      });

    const planned = Object.values(plan).reduce((a, b) => a + b, 0);
    expect(planned).toBe(TOTAL);
    // Shuffle so every kind is spread over the run, then run PARALLEL at a time.
    for (let i = tasks.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [tasks[i], tasks[j]] = [tasks[j], tasks[i]];
    }
    const t0 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < tasks.length && Date.now() - t0 < 180000) await tasks[next++]().catch(() => void stats.clientErrors++);
      }),
    );
    const fuzzMs = Date.now() - t0;
    const sent = Object.values(stats.sent).reduce((a, b) => a + b, 0);

    probing = false;
    await prober;
    for (let i = 0; i < 4; i++) await probeSend(`after ${i}`);
    await until(() => probes.every((p) => probeSent.every((id) => p.counts.has(id))), 15000, 'every probe message at every probe').catch(
      () => undefined,
    );
    const probeLost = probes.reduce((n, p) => n + probeSent.filter((id) => !p.counts.has(id)).length, 0);
    await sleep(500);
    const m1 = await metric();
    const observedAuthFailures = Object.entries(stats.connectErrors)
      .filter(([k]) => ['unauthorized', 'forbidden'].includes(k))
      .reduce((n, [, v]) => n + v, 0);
    const observedErrorAcks = Object.entries(stats.errorAcks)
      .filter(([k]) => k !== 'ok')
      .reduce((n, [, v]) => n + v, 0);
    const pidsAfter = c.pids();
    const health = c.local ? await Promise.all(c.gateways.map((g) => httpGet(`${c.gatewayUrl(g)}/healthz`))) : [];

    record(__filename, 'malformed: 10,000 malformed inputs (websocket + long-polling)', {
      inputsSent: sent,
      byKind: stats.sent,
      durationMs: fuzzMs,
      inputsPerSecond: Math.round(sent / (fuzzMs / 1000)),
      connectErrorsSeen: stats.connectErrors,
      errorAcksSeen: stats.errorAcks,
      eventsSentWithoutAck: stats.noAckEvents,
      pollingHttpStatus: stats.httpStatus,
      metricEventsNotOkDelta: m1.notOk - m0.notOk,
      metricAuthFailuresDelta: m1.auth - m0.auth,
      metricRequestErrorsDelta: m1.requestErrors - m0.requestErrors,
      processesAliveSamePids: c.local
        ? Object.keys(pidsBefore).every((n) => c.alive(n) && pidsBefore[n] === pidsAfter[n])
        : 'n/a (external)',
      probeMessages: probeSent.length,
      probeMessagesLost: probeLost,
      probeFailedAcks: probeFailed.length,
      probeDisconnects: probes.reduce((n, p) => n + p.disconnects.length, 0),
    });

    expect(sent).toBe(TOTAL);
    expect(probeFailed).toEqual([]);
    expect(probeLost).toBe(0);
    expect(observedAuthFailures).toBeGreaterThan(2000);
    expect(observedErrorAcks).toBeGreaterThan(1500);
    if (c.local) {
      expect(probes.map((p) => p.disconnects)).toEqual(probes.map(() => []));
      for (const n of Object.keys(pidsBefore)) {
        expect(c.alive(n)).toBe(true);
        expect(pidsAfter[n]).toBe(pidsBefore[n]);
      }
      expect(health.map((h) => h.status)).toEqual(c.gateways.map(() => 200));
      expect(m1.auth - m0.auth).toBeGreaterThanOrEqual(observedAuthFailures);
      expect(m1.notOk - m0.notOk).toBeGreaterThanOrEqual(observedErrorAcks);
      // events without an ack are refused the same way, as request-error (acks are optional)
      expect(m1.requestErrors - m0.requestErrors).toBeGreaterThanOrEqual(stats.noAckEvents);
    }
  });
});
