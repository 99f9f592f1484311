import http from 'http';
import net from 'net';
import type { AddressInfo } from 'net';
import type { Socket as ClientSocket } from 'socket.io-client';
import WebSocket from 'ws';
import { Balancer, startBalancer } from '../../bench/lib/balancer';
import { FORWARDED_HEADER, newPodTag } from '../../services/gateway/forwarding';
import { client, closeClients, metricValue, RunningGateway, startGateways, token, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// Sticky sessions optional (PROTOCOL.md "Connecting", ARCHITECTURE.md rule 11): Engine.IO session
// ids name their pod; a polling request or a websocket upgrade that reaches another pod is
// forwarded to the owner once, at the address of its heartbeat. Three gateways on one Redis,
// reached directly and through a round-robin balancer without cookies; forged session ids, dead
// and silent owners, and the bounds.

jest.setTimeout(60000);

const SID = /^[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{20}$/;
const SEP = '\x1e';

interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  ms: number;
}

/** One HTTP request without keep-alive; status 0 when the connection failed or timed out. */
function send(method: string, url: string, body?: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Answer> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.request(url, { method, agent: false, headers: { 'content-type': 'text/plain;charset=UTF-8', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers, ms: Date.now() - t0 }));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '', headers: {}, ms: Date.now() - t0 }));
    req.end(body);
  });
}

/** A raw Engine.IO v4 polling session: its requests go to whichever gateway each call names. */
class Poll {
  /** Sessions opened, closed at the end (a session that never polls again would hold its server's timers). */
  static opened: Array<{ base: string; p: Poll }> = [];
  packets: string[] = [];
  constructor(public sid: string) {}
  static async open(base: string): Promise<Poll> {
    const r = await send('GET', `${base}/socket.io/?EIO=4&transport=polling`);
    expect(r.status).toBe(200);
    const p = new Poll(JSON.parse(r.body.slice(1)).sid);
    Poll.opened.push({ base, p });
    return p;
  }
  static async closeAll(): Promise<void> {
    await Promise.all(Poll.opened.map(({ base, p }) => p.post(base, '1')));
    Poll.opened = [];
  }
  url(base: string): string {
    return `${base}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(this.sid)}`;
  }
  post(base: string, ...packets: string[]): Promise<Answer> {
    return send('POST', this.url(base), packets.join(SEP));
  }
  async get(base: string, timeoutMs = 5000): Promise<Answer> {
    const r = await send('GET', this.url(base), undefined, {}, timeoutMs);
    if (r.status === 200) this.packets.push(...r.body.split(SEP));
    return r;
  }
  /** GETs (through `bases` in turn) until a packet matches. */
  async until(bases: string[], pred: (p: string) => boolean, timeoutMs = 10000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (let i = 0; ; i++) {
      const hit = this.packets.find(pred);
      if (hit) return hit;
      if (Date.now() > end) throw new Error(`no matching packet in ${JSON.stringify(this.packets)}`);
      const r = await this.get(bases[i % bases.length], Math.max(100, end - Date.now()));
      if (r.status !== 200) throw new Error(`GET answered ${r.status}: ${r.body}`);
    }
  }
}

const forwarded = (g: RunningGateway, kind: string, outcome: string) =>
  metricValue(g.metrics, 'realtime_gateway_forwarded_requests_total', { kind, outcome });

let redis: TestRedis;
let stopAll: () => Promise<void>;
let gws: RunningGateway[];
let base: string[];

beforeAll(async () => {
  redis = await startRedis();
  const c = await startGateways(3, { REDIS_URL: redis.url });
  gws = c.gateways;
  base = gws.map((g) => g.url);
  stopAll = c.stop;
});
afterAll(async () => {
  closeClients();
  await Poll.closeAll();
  await stopAll?.();
  await redis?.stop();
});

/** The heartbeat of gateway `g`. */
async function entryOf(g: RunningGateway) {
  return (await g.gateway.ctx.engine.pods.pods()).find((p) => p.address === `http://127.0.0.1:${g.port}`)!;
}

describe('session ids name the pod that holds them', () => {
  test('each gateway hands out ids of its own tag and advertises its tag and address in its heartbeat', async () => {
    const tags = new Set<string>();
    for (const g of gws) {
      const entry = await entryOf(g);
      expect(entry.address).toBe(`http://127.0.0.1:${g.port}`);
      expect(entry.tag).toMatch(/^[A-Za-z0-9_-]{8}$/);
      tags.add(entry.tag!);
      const ids = await Promise.all([1, 2, 3].map(async () => (await Poll.open(g.url)).sid));
      for (const id of ids) {
        expect(id).toMatch(SID);
        expect(id.split('.')[0]).toBe(entry.tag);
      }
      expect(new Set(ids).size).toBe(3);
    }
    expect(tags.size).toBe(3);
  });
});

describe('a polling session works whichever gateway its requests reach', () => {
  test('handshake on one, CONNECT on a second, reads and acks on the third; a long-poll GET stays open through the hop', async () => {
    const okOf12 = async () => (await forwarded(gws[1], 'polling', 'ok')) + (await forwarded(gws[2], 'polling', 'ok'));
    const before = await okOf12();
    const p = await Poll.open(base[0]);
    expect((await p.post(base[1], `40${JSON.stringify({ token: await token('fw-raw') })}`)).body).toBe('ok');
    await p.until([base[2], base[1]], (x) => x.startsWith('40{'));
    // Both connect events, in whichever order they come (PROTOCOL.md fixes none): then nothing is pending.
    await p.until([base[1]], (x) => x.startsWith('42["queued-messages"'));
    await p.until([base[1]], (x) => x.startsWith('42["session"'));
    // A GET forwarded by gw1 waits (the owner has nothing to say) until an event sent through gw2 is answered.
    const pending = p.get(base[1], 8000);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    expect((await p.post(base[2], '421["leave-room","nowhere"]')).status).toBe(200);
    const answer = await pending;
    expect(answer.status).toBe(200);
    expect(answer.ms).toBeGreaterThanOrEqual(250);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(p.packets).toContain('431[{"ok":true,"room":"nowhere"}]');
    expect(await okOf12()).toBeGreaterThanOrEqual(before + 4);
  });

  test('a websocket upgrade of the session reaching another gateway is piped to the owner', async () => {
    const before = await forwarded(gws[2], 'websocket', 'ok');
    const p = await Poll.open(base[0]);
    await p.post(base[1], `40${JSON.stringify({ token: await token('fw-ws') })}`);
    await p.until([base[1]], (x) => x.startsWith('42["queued-messages"'));
    const ws = new WebSocket(`ws://127.0.0.1:${gws[2].port}/socket.io/?EIO=4&transport=websocket&sid=${encodeURIComponent(p.sid)}`);
    const got: string[] = [];
    ws.on('message', (d) => got.push(d.toString()));
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.send('2probe');
    await until(() => got.includes('3probe'), 5000, '3probe');
    ws.send('5');
    ws.send('421["leave-room","elsewhere"]');
    await until(() => got.includes('431[{"ok":true,"room":"elsewhere"}]'), 5000, 'the ack over the upgraded websocket');
    expect(await forwarded(gws[2], 'websocket', 'ok')).toBe(before + 1);
    ws.close();
  });
});

describe('stock socket.io-client through a round-robin balancer without cookies', () => {
  let lb: Balancer;
  beforeAll(async () => {
    lb = await startBalancer(gws.map((g) => g.port));
  });
  afterAll(async () => {
    closeClients();
    await lb?.close();
  });

  test.each([
    ['default options (polling, then websocket)', undefined, 'websocket'],
    ['long-polling only', ['polling'], 'polling'],
  ])('%s: 6 clients join one room, every message reaches every member once, no error', async (_label, transports, want) => {
    const room = `fw-room-${want}`;
    const sockets: ClientSocket[] = [];
    const errors: string[] = [];
    const got = new Map<string, number>();
    for (let i = 0; i < 6; i++) {
      const s = client(
        lb.url,
        { token: await token(`fw-${want}-${i}`) },
        { transports: transports ?? ['polling', 'websocket'], reconnection: false },
      );
      s.on('connect_error', (e) => errors.push(`connect_error ${e.message}`));
      s.on('disconnect', (r) => errors.push(`disconnect ${r}`));
      s.on('message', (m: { id: string }) => got.set(`${i}:${m.id}`, (got.get(`${i}:${m.id}`) ?? 0) + 1));
      await waitFor(s, 'connect', () => true, 10000);
      sockets.push(s);
    }
    for (const s of sockets) expect(await s.timeout(5000).emitWithAck('join-room', room)).toMatchObject({ ok: true });
    const ids: string[] = [];
    for (const s of sockets) ids.push(((await s.timeout(5000).emitWithAck('message', { roomId: room, text: 'hi' })) as { id: string }).id);
    await until(() => sockets.every((_, i) => ids.every((id) => got.get(`${i}:${id}`) === 1)), 10000, 'every message at every member');
    if (want === 'websocket') await until(() => sockets.every((s) => s.io.engine.transport.name === 'websocket'), 5000, 'the upgrades');
    expect(errors).toEqual([]);
    expect([...got.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(sockets.map((s) => s.io.engine.transport.name))).toEqual(new Set([want]));
    const forwardedOk = (await Promise.all(gws.map((g) => forwarded(g, want === 'websocket' ? 'websocket' : 'polling', 'ok')))).reduce(
      (a, b) => a + b,
    );
    expect(forwardedOk).toBeGreaterThan(0);
    for (const s of sockets) s.disconnect();
  });
});

describe('bad input: forged and foreign session ids', () => {
  test('garbage, a pod that never existed, and a forwarded request for another pod answer 400 without any forwarding', async () => {
    const g = gws[1];
    const noOwner = await forwarded(g, 'polling', 'no_owner');
    const loops = await forwarded(g, 'polling', 'loop');
    const ok = await forwarded(g, 'polling', 'ok');
    const url = (sid: string) => `${g.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
    for (const sid of ['garbage', 'x'.repeat(300), `${newPodTag()}.${'A'.repeat(20)}`, 'AAAAAAAA.BBBBBBBBBBBBBBBBBBBB']) {
      const r = await send('GET', url(sid));
      expect({ sid, status: r.status, body: r.body }).toEqual({ sid, status: 400, body: '{"code":1,"message":"Session ID unknown"}' });
      expect(r.ms).toBeLessThan(2000);
    }
    expect(await forwarded(g, 'polling', 'no_owner')).toBe(noOwner + 4);
    // Already forwarded (marked) yet naming gw0: answered here, never sent on.
    const p = await Poll.open(base[0]);
    const marked = await send('POST', url(p.sid), '3', { [FORWARDED_HEADER]: 'someone' });
    expect(marked.status).toBe(400);
    expect(await forwarded(g, 'polling', 'loop')).toBe(loops + 1);
    expect(await forwarded(g, 'polling', 'ok')).toBe(ok);
  });

  test("another pod's tag with a made-up rest reaches that pod once, which answers 400", async () => {
    const tag0 = (await entryOf(gws[0])).tag!;
    const before = await forwarded(gws[0], 'polling', 'loop');
    const r = await send('GET', `${base[1]}/socket.io/?EIO=4&transport=polling&sid=${tag0}.${'Z'.repeat(20)}`);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toEqual({ code: 1, message: 'Session ID unknown' });
    expect(await forwarded(gws[0], 'polling', 'loop')).toBe(before);
  });

  test('a forged sid on a websocket upgrade is refused 400 as Socket.IO does', async () => {
    for (const sid of ['garbage', `${newPodTag()}.${'Q'.repeat(20)}`]) {
      const ws = new WebSocket(`ws://127.0.0.1:${gws[1].port}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
      const status = await new Promise<number>((resolve) => {
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => resolve(101));
        ws.once('error', () => resolve(-1));
      });
      expect({ sid, status }).toEqual({ sid, status: 400 });
      ws.terminate();
    }
  });

  test('an address in the registry that is not http://host:port is never connected to', async () => {
    const reg = gws[0].gateway.ctx.engine.pods;
    const tag = newPodTag();
    for (const [i, address] of [
      'file:///etc/passwd',
      'http://user:pw@127.0.0.1:1',
      'https://127.0.0.1:1',
      'http://127.0.0.1:1/x',
    ].entries()) {
      await reg.heartbeat({ id: `odd-${i}`, connections: 0, lastHeartbeat: Date.now(), tag, address }, false);
    }
    const r = await send('GET', `${base[2]}/socket.io/?EIO=4&transport=polling&sid=${tag}.${'A'.repeat(20)}`);
    expect(r.status).toBe(400);
    for (let i = 0; i < 4; i++) await reg.removePod(`odd-${i}`);
  });
});

describe('owners that are gone, unreachable or silent', () => {
  let extra: { gateways: RunningGateway[]; stop(): Promise<void> };
  let silent: net.Server;
  const held = new Set<net.Socket>();
  let closedPort: number;

  beforeAll(async () => {
    extra = await startGateways(1, {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: gws[0].cfg.keyPrefix,
      POD_NAME: 'fw-bounded',
      FORWARD_CONNECT_TIMEOUT_MS: '300',
      FORWARD_TIMEOUT_MS: '1000',
      FORWARD_MAX_CONNECTIONS: '1',
    });
    silent = net.createServer((s) => (held.add(s), s.on('error', () => undefined)));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => silent?.close(r));
    await extra?.stop();
  });

  async function ghost(address: string): Promise<string> {
    const tag = newPodTag();
    await gws[0].gateway.ctx.engine.pods.heartbeat({ id: `ghost-${tag}`, connections: 0, lastHeartbeat: Date.now(), tag, address }, false);
    return `${tag}.${'G'.repeat(20)}`;
  }

  test('an owner nobody can reach: 503 within the connect bound, polling and websocket, counted', async () => {
    const g = gws[1];
    const sid = await ghost(`http://127.0.0.1:${closedPort}`);
    const before = await forwarded(g, 'polling', 'unreachable');
    const r = await send('GET', `${g.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    expect(r.status).toBe(503);
    expect(r.ms).toBeLessThan(3000);
    expect(await forwarded(g, 'polling', 'unreachable')).toBe(before + 1);
    const ws = new WebSocket(`ws://127.0.0.1:${g.port}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
    const status = await new Promise<number>((resolve) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => resolve(101));
      ws.once('error', () => resolve(-1));
    });
    ws.terminate();
    expect(status).toBe(503);
    expect(await forwarded(g, 'websocket', 'unreachable')).toBeGreaterThanOrEqual(1);
  });

  test('an owner that accepts and never answers: 503 after FORWARD_TIMEOUT_MS, never a hang; one forward at a time beyond the bound is refused', async () => {
    const g = extra.gateways[0];
    const sid = await ghost(`http://127.0.0.1:${(silent.address() as AddressInfo).port}`);
    const url = `${g.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const first = send('GET', url, undefined, {}, 5000);
    await until(async () => (await metricValue(g.metrics, 'realtime_gateway_forwarded_connections')) === 1, 3000, 'the first forward');
    const second = await send('GET', url, undefined, {}, 5000);
    expect(second.status).toBe(503);
    expect(await forwarded(g, 'polling', 'overloaded')).toBe(1);
    const a = await first;
    expect(a.status).toBe(503);
    expect(a.ms).toBeGreaterThanOrEqual(900);
    expect(a.ms).toBeLessThan(3000);
    expect(await forwarded(g, 'polling', 'timeout')).toBe(1);
    expect(await metricValue(g.metrics, 'realtime_gateway_forwarded_connections')).toBe(0);
  });

  test('an owner that shut down: its session ids answer 400 (the client reconnects and recovers), no hop', async () => {
    const gone = await startGateways(1, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: gws[0].cfg.keyPrefix, POD_NAME: 'fw-leaving' });
    const p = await Poll.open(gone.gateways[0].url);
    await gone.stop();
    const before = await forwarded(gws[1], 'polling', 'no_owner');
    const r = await p.get(base[1]);
    expect(r.status).toBe(400);
    expect(await forwarded(gws[1], 'polling', 'no_owner')).toBe(before + 1);
  });
});
