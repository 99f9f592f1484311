import { execSync } from 'child_process';
import fs from 'fs';
import http from 'http';
import type { Socket as ClientSocket } from 'socket.io-client';
import { client, closeClients, GatewayProcess, spawnService, token, uniquePrefix, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// Redis goes away under two gateway processes and comes back on the same port (AOF on, as in
// production): the gateways degrade (acks `unavailable`, readiness fails), never crash or spin,
// and resume by themselves.

jest.setTimeout(90000);

const OUTAGE_MS = 3000;
const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

let redis: TestRedis;
const gws: GatewayProcess[] = [];

beforeAll(async () => {
  redis = await startRedis({ appendonly: true }); // an own instance (never an external REDIS_URL): it gets stopped
  const prefix = uniquePrefix();
  for (let i = 0; i < 2; i++)
    gws.push(await spawnService('gateway', { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, POD_NAME: `${prefix}-out-${i}` }));
});
afterEach(() => closeClients());
afterAll(async () => {
  closeClients();
  await Promise.allSettled(gws.map((g) => g.kill('SIGKILL')));
  await redis?.stop().catch(() => undefined);
});

/** GET on loopback; resolves with the status code. */
function status(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

/** CPU time (user + system) the process has used so far, in seconds, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

const UNAVAILABLE = { ok: false, error: { code: 'unavailable', message: expect.any(String) } };

/** A user on gateway `i` with reconnection on; resolves once connected. */
async function user(id: string, i: number): Promise<ClientSocket> {
  const s = client(gws[i].url, { token: await token(id) }, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 1000 });
  await waitFor(s, 'connect', () => true, 10000);
  return s;
}

test('while Redis is down acks answer unavailable, readiness fails, the pods stay up and idle; all resumes when it returns', async () => {
  const alice = await user('alice', 0);
  const bob = await user('bob', 1);
  expect(await alice.emitWithAck('join-room', 'ops')).toMatchObject({ ok: true, members: 1 });
  expect(await bob.emitWithAck('join-room', 'ops')).toMatchObject({ ok: true, members: 2 });
  const bobGot: Array<{ id: string; text: string }> = [];
  bob.on('message', (m) => bobGot.push(m));
  const drops = { alice: 0, bob: 0 };
  alice.on('disconnect', () => drops.alice++);
  bob.on('disconnect', () => drops.bob++);
  for (const g of gws) expect(await status(g.port, '/readyz')).toBe(200);

  // --- outage ---
  await redis.stop();
  const downAt = Date.now();
  for (const g of gws) await until(async () => (await status(g.port, '/readyz')) === 503, 10000, 'readiness to fail');
  console.log(`readiness failed within ${Date.now() - downAt} ms of Redis stopping`);
  const cpu0 = gws.map((g) => cpuSeconds(g.proc.pid!));
  const t0 = Date.now();
  let rounds = 0;
  // For the measurement window, keep using the pods the way clients would, checking every answer.
  while (Date.now() - t0 < OUTAGE_MS) {
    for (const g of gws) {
      expect(await status(g.port, '/healthz')).toBe(200);
      expect(await status(g.metricsPort, '/healthz')).toBe(200);
      expect(await status(g.port, '/readyz')).toBe(503);
    }
    expect(await alice.timeout(5000).emitWithAck('join-room', 'ops-2')).toEqual(UNAVAILABLE);
    expect(await alice.timeout(5000).emitWithAck('message', { roomId: 'ops', text: 'during the outage' })).toEqual(UNAVAILABLE);
    expect(await bob.timeout(5000).emitWithAck('get-room-members', 'ops')).toEqual(UNAVAILABLE);
    expect(await bob.timeout(5000).emitWithAck('leave-room', 'ops')).toEqual(UNAVAILABLE);
    rounds++;
    await new Promise((r) => setTimeout(r, 250)); // pacing of the probes, not a wait for an event
  }
  const window = (Date.now() - t0) / 1000;
  const cpu = gws.map((g, i) => (cpuSeconds(g.proc.pid!) - cpu0[i]) / window);
  console.log(
    `outage: ${rounds} probe rounds in ${window.toFixed(1)} s; gateway CPU ${cpu.map((c) => `${(c * 100).toFixed(1)}%`).join(', ')} of one core`,
  );
  for (const c of cpu) expect(c).toBeLessThan(0.5);
  for (const g of gws) expect(g.proc.exitCode).toBeNull();
  expect(bobGot.map((m) => m.text)).not.toContain('during the outage');

  // --- Redis returns ---
  const upAt = Date.now();
  await redis.restart();
  for (const g of gws) await until(async () => (await status(g.port, '/readyz')) === 200, 20000, 'readiness to recover');
  console.log(`readiness back ${Date.now() - upAt} ms after Redis restarted`);
  // the clients are still connected (or came back by themselves) and everything works again
  await until(() => alice.connected && bob.connected, 20000, 'clients connected');
  // membership acknowledged before the outage survived it (AOF)
  const members = await bob.emitWithAck('get-room-members', 'ops');
  expect(members).toMatchObject({ ok: true, count: 2 });
  expect(await alice.emitWithAck('join-room', 'ops-2')).toMatchObject({ ok: true, room: 'ops-2' });
  // cross-pod delivery through the adapter stream works again
  const sent = await alice.timeout(5000).emitWithAck('message', { roomId: 'ops', text: 'after the outage' });
  expect(sent).toMatchObject({ ok: true });
  await until(() => bobGot.some((m) => m.id === sent.id), 10000, 'the message at bob on the other pod');
  const bob2 = await user('bob', 0);
  expect(await bob2.emitWithAck('join-room', 'ops')).toEqual({ ok: true, room: 'ops', members: 2 });
  for (const g of gws) expect(g.proc.exitCode).toBeNull();
  console.log(`client disconnects during the outage: alice ${drops.alice}, bob ${drops.bob}`);
  // the pods logged warnings about the connection only: no errors, no stray rejections
  expect(gws.map((g) => g.output()).join('')).not.toMatch(/"level":(50|60)|FATAL|Unhandled|uncaught/i);
});
