import http from 'http';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  client,
  closeClients,
  collect,
  connect,
  GatewayProcess,
  spawnService,
  token,
  uniquePrefix,
  until,
  waitFor,
} from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';
import { startProxy, TcpProxy } from '../helpers/tcp-proxy';

// Graceful shutdown (ARCHITECTURE.md rule 5) of real processes: SIGTERM -> readiness fails ->
// SHUTDOWN_DELAY_MS -> sockets told to reconnect -> they recover on another pod -> exit 0.
// Clients keep one URL: a loopback round-robin TCP proxy (the ingress) that skips refused backends.

jest.setTimeout(90000);

const SHUTDOWN_DELAY_MS = 500;
const DRAIN_TIMEOUT_MS = 3000;
const MARGIN_MS = 3000;

let redis: TestRedis;
let prefix: string;
const procs: GatewayProcess[] = [];
let proxy: TcpProxy | undefined;

beforeAll(async () => {
  redis = await startRedis();
  prefix = uniquePrefix();
});
afterEach(() => closeClients());
afterAll(async () => {
  closeClients();
  await proxy?.close();
  await Promise.allSettled(procs.map((p) => p.kill('SIGKILL')));
  await redis?.stop();
});

/** GET on loopback; resolves with the status code, or 0 when the port refuses. */
function status(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

const spawnGateway = async (name: string) => {
  const p = await spawnService('gateway', {
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: prefix,
    POD_NAME: `${prefix}-${name}`,
    SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS),
    DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
  });
  procs.push(p);
  return p;
};

test('SIGTERM: readiness fails first, clients move to another pod by themselves and recover, rooms are handed over, exit 0', async () => {
  const a = await spawnGateway('a');
  const b = await spawnGateway('b');
  proxy = await startProxy([a.port]);
  // two websocket clients and one on HTTP long-polling only
  const users = ['mover-1', 'mover-2', 'mover-poll'];
  const movers: ClientSocket[] = [];
  for (const u of users) {
    const transports: Array<'websocket' | 'polling'> = u === 'mover-poll' ? ['polling'] : ['websocket'];
    const s = client(
      proxy.url,
      { token: await token(u) },
      { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500, transports },
    );
    await waitFor(s, 'connect', () => true, 10000);
    expect(await s.emitWithAck('join-room', 'handover')).toMatchObject({ ok: true });
    movers.push(s);
  }
  expect(await movers[0].emitWithAck('join-room', 'extra')).toMatchObject({ ok: true });
  const observer = await connect(b.url, { token: await token('observer') });
  expect(await observer.emitWithAck('join-room', 'handover')).toMatchObject({ ok: true, members: 4 });
  expect(await observer.emitWithAck('join-room', 'extra')).toMatchObject({ ok: true, members: 2 });
  const left = collect(observer, 'user-left');
  const joined = collect(observer, 'user-joined');
  const events = movers.map((s) => {
    const e = { reasons: [] as string[], disconnectedAt: 0, reconnectedAt: 0 };
    s.on('disconnect', (r) => {
      e.reasons.push(r);
      e.disconnectedAt ||= Date.now();
    });
    s.io.on('reconnect', () => (e.reconnectedAt ||= Date.now()));
    return e;
  });
  const got = movers.map((s) => {
    const ids = new Map<string, number>();
    s.on('message', (m: { id: string }) => ids.set(m.id, (ids.get(m.id) ?? 0) + 1));
    return ids;
  });
  proxy.setTargets([a.port, b.port]); // the ingress: round-robin, a refused backend is skipped

  const t0 = Date.now();
  const exited = a.kill('SIGTERM');
  await until(async () => (await status(a.port, '/readyz')) === 503, 5000, 'readiness to fail');
  const readyFailedMs = Date.now() - t0;
  // during the delay the pod is alive and still holds its sockets: only readiness fails
  expect(await status(a.port, '/healthz')).toBe(200);
  expect(await status(a.metricsPort, '/healthz')).toBe(200);
  expect(movers.every((s) => s.connected)).toBe(true);
  expect(await status(b.port, '/readyz')).toBe(200);

  await until(() => events.every((e) => e.reconnectedAt > 0), 15000, 'every client to reconnect');
  const code = await exited;
  const exitMs = Date.now() - t0;
  console.log(
    `SIGTERM: readyz 503 after ${readyFailedMs} ms; clients disconnected after ${events.map((e) => e.disconnectedAt - t0).join(', ')} ms, ` +
      `reconnected after ${events.map((e) => e.reconnectedAt - t0).join(', ')} ms; exit ${code} after ${exitMs} ms`,
  );
  expect(code).toBe(0);
  expect(exitMs).toBeLessThan(SHUTDOWN_DELAY_MS + DRAIN_TIMEOUT_MS + MARGIN_MS);
  for (const e of events) {
    // a reason that makes a client reconnect by itself, after the delay
    expect(e.reasons).toEqual(['transport close']);
    expect(e.disconnectedAt - t0).toBeGreaterThanOrEqual(SHUTDOWN_DELAY_MS - 50);
  }
  expect(proxy.routed.get(b.port)).toBeGreaterThanOrEqual(3);
  for (const s of movers) {
    expect(s.connected).toBe(true);
    expect(s.recovered).toBe(true);
  }

  // rooms were handed over: messages reach the movers on b, membership is counted on the survivor
  const m1 = await observer.emitWithAck('message', { roomId: 'handover', text: 'after the move' });
  const m2 = await observer.emitWithAck('message', { roomId: 'extra', text: 'extra after the move' });
  await until(() => got[0].has(m1.id) && got[0].has(m2.id) && got[1].has(m1.id) && got[2].has(m1.id), 10000, 'messages after the move');
  const members = await observer.emitWithAck('get-room-members', 'handover');
  expect(members).toMatchObject({ ok: true, count: 4 });
  expect(members.members).toEqual(expect.arrayContaining(users.map((userId) => ({ userId, sockets: 1 }))));
  expect((await observer.emitWithAck('get-room-members', 'extra')).count).toBe(2);
  // a probe after everything: nobody was announced as leaving or re-joining
  const probe = waitFor(observer, 'message', (m: { text: string }) => m.text === 'probe');
  await movers[1].emitWithAck('message', { roomId: 'handover', text: 'probe' });
  await probe;
  expect(left).toEqual([]);
  expect(joined).toEqual([]);
  expect(got[1].has(m2.id) || got[2].has(m2.id)).toBe(false);
  expect(got.flatMap((g) => [...g.values()]).every((n) => n === 1)).toBe(true);
  expect(a.output()).not.toMatch(/"level":(50|60)/);
});

test('the worker shuts down cleanly on SIGTERM with exit code 0', async () => {
  const w = await spawnService('worker', {
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: prefix,
    POD_NAME: `${prefix}-worker`,
    DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
  });
  procs.push(w);
  await until(async () => (await status(w.port, '/readyz')) === 200, 10000, 'the worker to be ready');
  const t0 = Date.now();
  const code = await w.kill('SIGTERM');
  const ms = Date.now() - t0;
  console.log(`worker: exit ${code} ${ms} ms after SIGTERM`);
  expect(code).toBe(0);
  expect(ms).toBeLessThan(DRAIN_TIMEOUT_MS + MARGIN_MS);
  expect(w.output()).not.toMatch(/"level":(50|60)/);
});
