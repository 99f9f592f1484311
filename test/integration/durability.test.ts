import { randomUUID } from 'crypto';
import http from 'http';
import Redis from 'ioredis';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  client,
  closeClients,
  collect,
  GatewayProcess,
  seenOnce,
  spawnService,
  token,
  uniquePrefix,
  until,
  waitFor,
} from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';
import { startProxy, TcpProxy } from '../helpers/tcp-proxy';

// Durability with real processes (dist/, `npm run build` first): a message acknowledged to its
// sender survives the loss of the recipient's pod at the worst moment, and everything
// acknowledged (direct messages, 202-accepted publishes) survives a Redis SIGKILL (AOF, fsync always).

jest.setTimeout(90000);

const KEY = 'durability-api-key-0123456789';
const tag = () => randomUUID().slice(0, 8);

let redis: TestRedis;
let r: Redis;
let proxy: TcpProxy | undefined;
/** The helper's stop() waits for an exit that already happened after stop(true): track it here. */
let redisDown = false;
const procs: GatewayProcess[] = [];

async function spawn(
  service: 'gateway' | 'worker',
  prefix: string,
  name: string,
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const p = await spawnService(service, {
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: prefix,
    POD_NAME: `${prefix}-${name}`,
    API_KEYS: KEY,
    ...env,
  });
  procs.push(p);
  return p;
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.setTimeout(3000, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function publish(port: number, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/api/v1/publish',
        agent: false,
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: t ? JSON.parse(t) : undefined }));
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error('publish timed out')));
    req.on('error', reject);
    req.end(text);
  });
}

type Batch = {
  messages: Array<{ id: string; from?: string; text?: string; publishId?: string; event?: string; data?: unknown; timestamp: number }>;
  more: boolean;
};

/** A user's socket with its listeners in place before it connects. */
async function open(
  url: string,
  userId: string,
  opts: { reconnection?: boolean } = {},
): Promise<{ s: ClientSocket; batches: Batch[]; live: any[] }> {
  const s = client(
    url,
    { token: await token(userId) },
    { reconnection: opts.reconnection ?? false, reconnectionDelay: 100, reconnectionDelayMax: 500 },
  );
  const batches = collect<Batch>(s, 'queued-messages');
  const live = collect(s, 'direct-message');
  await waitFor(s, 'connect', () => true, 10000);
  return { s, batches, live };
}

const replayDone = (batches: Batch[]) => batches.length > 0 && batches[batches.length - 1].more === false;

beforeAll(async () => {
  redis = await startRedis({ appendonly: true }); // its own instance: it gets SIGKILLed
  r = new Redis(redis.url);
});
afterAll(async () => {
  closeClients();
  for (const p of procs) {
    p.proc.kill('SIGCONT');
    await p.kill('SIGKILL');
  }
  await proxy?.close();
  r?.disconnect();
  if (!redisDown) await redis?.stop();
});

test("SIGKILL of the recipient's gateway between the sender's ack and the live delivery: the message comes from the inbox on reconnect", async () => {
  const prefix = uniquePrefix();
  const a = await spawn('gateway', prefix, 'a');
  const b = await spawn('gateway', prefix, 'b');
  proxy = await startProxy([b.port]); // the ingress: bob's client keeps one URL
  const bob = `bob-${tag()}`;
  const alice = `alice-${tag()}`;
  const rx = await open(proxy.url, bob, { reconnection: true });
  await until(() => replayDone(rx.batches), 10000, "bob's first (empty) replay");
  expect(rx.batches).toEqual([{ messages: [], more: false }]);
  const tx = await open(a.url, alice);

  // bob is live on b: a first message reaches him there
  const first = await tx.s.emitWithAck('direct-message', { toUserId: bob, text: 'before' });
  await until(() => rx.live.some((m) => m.id === first.id), 5000, 'live delivery through b');
  expect(await rx.s.emitWithAck('inbox:ack', { upTo: first.id })).toEqual({ ok: true, upTo: first.id });

  // Freeze b: the adapter stream still gets the broadcast, but b can no longer write it to bob.
  b.proc.kill('SIGSTOP');
  const ack = await tx.s.emitWithAck('direct-message', { toUserId: bob, text: 'during', data: { n: 1 } });
  expect(ack).toEqual({ ok: true, id: expect.any(String), timestamp: expect.any(Number) });
  expect(rx.live.map((m) => m.id)).toEqual([first.id]);
  // ... and kill it before it ever does. bob's connection drops; the ingress now routes to a.
  proxy.setTargets([a.port]);
  await b.kill('SIGKILL');
  await until(
    () => rx.batches.some((x) => x.messages.some((m) => m.id === ack.id)),
    15000,
    'the message in queued-messages after the reconnect',
  );
  expect(rx.s.connected).toBe(true);
  expect(proxy.routed.get(a.port)).toBeGreaterThanOrEqual(1);
  const replay = rx.batches[rx.batches.length - 1];
  // the acknowledged one is not replayed; the lost live delivery is
  expect(replay).toEqual({
    messages: [{ id: ack.id, from: alice, text: 'during', data: { n: 1 }, timestamp: ack.timestamp }],
    more: false,
  });
  // (a recovered session may also replay the live event from the adapter stream: at-least-once)
  for (const m of rx.live) expect([first.id, ack.id]).toContain(m.id);
});

test('a Redis SIGKILL + restart (AOF) loses no acknowledged direct message and no 202-accepted publish to a user', async () => {
  const prefix = uniquePrefix();
  const g = await spawn('gateway', prefix, 'g', { RATE_LIMIT_EVENTS_PER_SECOND: '0', SOCKET_WRITE_BYTES_PER_SECOND: '0' });
  const w = await spawn('worker', prefix, 'w', { WORKER_VISIBILITY_TIMEOUT_MS: '1000' });
  const carol = `carol-${tag()}`;
  await seenOnce(g.url, carol);
  const tx = await open(g.url, `dan-${tag()}`, { reconnection: true });

  const acked = new Set<string>();
  const accepted = new Set<string>();
  const refused = { direct: new Map<string, number>(), publish: new Map<number, number>() };
  let stop = false;
  let seq = 0;
  const directLoop = async () => {
    for (let i = 0; i < 5000 && !stop; i++) {
      const res = await tx.s
        .timeout(5000)
        .emitWithAck('direct-message', { toUserId: carol, text: `d${i}` })
        .catch((e: Error) => ({ ok: false, error: { code: `client: ${e.message}` } }));
      if (res.ok) acked.add(res.id);
      else refused.direct.set(res.error.code, (refused.direct.get(res.error.code) ?? 0) + 1);
    }
  };
  const publishLoop = async () => {
    for (let i = 0; i < 5000 && !stop; i++) {
      const id = `p-${prefix}-${seq++}`;
      const res = await publish(g.port, { userId: carol, event: 'notify', data: { id }, id }).catch(() => ({ status: 0, body: undefined }));
      if (res.status === 202) {
        expect(res.body).toEqual({ id });
        accepted.add(id);
      } else refused.publish.set(res.status, (refused.publish.get(res.status) ?? 0) + 1);
    }
  };
  const loops = [directLoop(), publishLoop()];
  // Kill Redis in the middle of the traffic: the worker is delivering, the gateway appending.
  await until(() => acked.size >= 50 && accepted.size >= 50, 20000, 'traffic before the crash');
  await redis.stop(true);
  redisDown = true;
  await until(
    () => [...refused.direct.values()].reduce((x, y) => x + y, 0) >= 3 && [...refused.publish.values()].reduce((x, y) => x + y, 0) >= 3,
    15000,
    'refusals during the outage',
  );
  stop = true;
  await Promise.all(loops);
  // while Redis is down: refused with the protocol's codes, never a crash
  expect([...refused.direct.keys()]).toEqual(['unavailable']);
  expect([...refused.publish.keys()]).toEqual([503]);
  expect(g.proc.exitCode).toBeNull();
  expect(w.proc.exitCode).toBeNull();

  await redis.restart();
  redisDown = false;
  // the gateway and the worker reconnect by themselves
  await until(
    async () => (await get(g.metricsPort, '/readyz')) === 200 && (await get(w.metricsPort, '/readyz')) === 200,
    20000,
    'readiness after the restart',
  );
  // the worker finishes what was in the outbox (including entries in flight at the crash)
  const stream = `${prefix}:{outbox}`;
  await until(
    async () => (await r.xlen(stream)) === 0 && Number(((await r.xpending(stream, 'workers')) as unknown[])[0]) === 0,
    20000,
    'the outbox to drain',
  );

  const d = await open(g.url, carol);
  await until(() => replayDone(d.batches), 20000, "carol's replay");
  const all = d.batches.flatMap((x) => x.messages);
  const direct = new Set(all.filter((m) => m.from !== undefined).map((m) => m.id));
  const published = all.filter((m) => m.publishId !== undefined).map((m) => m.publishId!);
  const lostDirect = [...acked].filter((id) => !direct.has(id));
  const lostPublish = [...accepted].filter((id) => !published.includes(id));

  console.log(
    `acked ${acked.size} direct + ${accepted.size} publishes before/around the crash; refused ${JSON.stringify([...refused.direct])} ${JSON.stringify([...refused.publish])}; inbox after restart: ${direct.size} direct, ${published.length} publishes`,
  );
  expect(lostDirect).toEqual([]);
  expect(lostPublish).toEqual([]);
  // one inbox entry per publish id even though deliveries were retried across the crash
  expect(new Set(published).size).toBe(published.length);
  expect(d.batches.every((x, i) => x.more === i < d.batches.length - 1)).toBe(true);
  expect(g.output() + w.output()).not.toMatch(/"level":(50|60)|Unhandled|uncaught/i);
});
