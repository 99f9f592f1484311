import type { Socket as ClientSocket } from 'socket.io-client';
import {
  client,
  closeClients,
  connect,
  GatewayProcess,
  metricValue,
  RunningGateway,
  spawnService,
  startGateways,
  token,
  uniquePrefix,
  until,
  waitFor,
} from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';
import { startProxy, TcpProxy } from '../helpers/tcp-proxy';

// Connection state recovery as a user sees it: the client keeps one URL (a loopback TCP proxy
// standing in for the ingress), loses its connection, and comes back through the proxy to
// another pod with `recovered === true`, its rooms, and every room message it missed, once.

jest.setTimeout(90000);

/** Reconnecting client options: quick retries so the tests do not wait on back-off. */
const RECONNECT = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0 };

/** Counts `message` events by id. */
function tally(s: ClientSocket): Map<string, number> {
  const seen = new Map<string, number>();
  s.on('message', (m: { id: string }) => seen.set(m.id, (seen.get(m.id) ?? 0) + 1));
  return seen;
}

/** Sends a message and resolves with its id once `witness` (a member of every target room) has it. */
async function send(sender: ClientSocket, witness: Map<string, number>, msg: Record<string, unknown>): Promise<string> {
  const ack = await sender.emitWithAck('message', msg);
  expect(ack).toMatchObject({ ok: true });
  await until(() => witness.has(ack.id), 10000, `message ${ack.id} at the witness`);
  return ack.id;
}

/**
 * The scenario shared by every variant: `c` (through `proxy`, currently routed to its first pod)
 * is in rooms r1 and r2; `cut()` ends its connection; messages are sent while no pod is reachable;
 * the proxy is pointed at `nextPort` and the client reconnects by itself.
 */
async function recoverScenario(opts: {
  proxy: TcpProxy;
  c: ClientSocket;
  sender: ClientSocket;
  witness: ClientSocket;
  cut: () => Promise<void> | void;
  nextPort: number;
}): Promise<{ reconnectMs: number }> {
  const { proxy, c, sender, witness } = opts;
  for (const r of ['r1', 'r2']) expect(await c.emitWithAck('join-room', r)).toMatchObject({ ok: true, room: r });
  for (const r of ['r1', 'r2', 'other']) expect(await witness.emitWithAck('join-room', r)).toMatchObject({ ok: true });
  const got = tally(c);
  const seen = tally(witness);
  const before = await send(sender, seen, { roomId: 'r1', text: 'before' });
  await until(() => got.has(before), 10000, 'the message before the cut');

  const reasons: string[] = [];
  c.on('disconnect', (r) => reasons.push(r));
  const gone = waitFor(c, 'disconnect', () => true, 15000);
  proxy.setTargets([]); // while away, no pod is reachable: reconnection attempts fail
  await opts.cut();
  await gone;
  const missed = [
    await send(sender, seen, { roomId: 'r1', text: 'missed 1' }),
    await send(sender, seen, { roomId: 'r2', text: 'missed 2' }),
    await send(sender, seen, { roomIds: ['r1', 'r2'], text: 'missed in both' }),
    await send(sender, seen, { roomId: 'r1', text: 'missed 3', data: { n: 3 } }),
  ];
  const notMine = await send(sender, seen, { roomId: 'other', text: 'not for c' });
  expect(c.connected).toBe(false);

  const back = waitFor(c, 'connect', () => true, 20000);
  const t0 = Date.now();
  proxy.setTargets([opts.nextPort]);
  await back;
  const reconnectMs = Date.now() - t0;
  expect(reasons).toHaveLength(1);
  expect(c.recovered).toBe(true);
  await until(() => missed.every((id) => got.has(id)), 10000, 'the missed messages');
  // still in both rooms on the new pod: messages sent afterwards arrive
  const after = [await send(sender, seen, { roomId: 'r1', text: 'after 1' }), await send(sender, seen, { roomId: 'r2', text: 'after 2' })];
  await until(() => after.every((id) => got.has(id)), 10000, 'messages after recovery');
  // exactly once, nothing from rooms it is not in
  expect([...got.entries()].filter(([, n]) => n !== 1)).toEqual([]);
  expect(got.has(notMine)).toBe(false);
  expect([...got.keys()].sort()).toEqual([before, ...missed, ...after].sort());
  return { reconnectMs };
}

describe.each([
  ['memory', 1],
  ['redis', 3],
])('recovery after a clean transport close (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  let gateways: RunningGateway[];
  let stop: () => Promise<void>;
  let proxy: TcpProxy;

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const c = await startGateways(n, { REDIS_URL: redis?.url });
    gateways = c.gateways;
    stop = c.stop;
    proxy = await startProxy([gateways[0].port]);
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await proxy?.close();
    await stop?.();
    await redis?.stop();
  });

  test('the client comes back (to another pod when there is one), recovered, in its rooms, with every missed message once', async () => {
    const next = gateways[gateways.length - 1];
    const c = client(proxy.url, { token: await token('rec-user') }, RECONNECT);
    await waitFor(c, 'connect', () => true, 10000);
    expect(c.recovered).toBe(false);
    const sender = await connect(gateways[1 % n].url, { token: await token('rec-sender') });
    const witness = await connect(gateways[2 % n].url, { token: await token('rec-witness') });
    const recoveredBefore = await metricValue(next.metrics, 'realtime_gateway_recovery_successes_total');

    const cut = () => void c.io.engine.close(); // the transport closes cleanly, from the client side
    const { reconnectMs } = await recoverScenario({ proxy, c, sender, witness, cut, nextPort: next.port });
    console.log(`${engine}: reconnected and recovered ${reconnectMs} ms after a pod became reachable`);
    expect((await metricValue(next.metrics, 'realtime_gateway_recovery_successes_total')) - recoveredBefore).toBe(1);
    // membership is counted once, from any pod
    const members = await witness.emitWithAck('get-room-members', 'r1');
    expect(members.members).toEqual(expect.arrayContaining([{ userId: 'rec-user', sockets: 1 }]));
    expect(members.count).toBe(2);
  });
});

describe('recovery after a pod is killed with SIGKILL (3 gateway processes)', () => {
  let redis: TestRedis;
  const procs: GatewayProcess[] = [];
  let proxy: TcpProxy;

  beforeAll(async () => {
    redis = await startRedis();
    const prefix = uniquePrefix();
    for (let i = 0; i < 3; i++)
      procs.push(await spawnService('gateway', { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, POD_NAME: `${prefix}-kill-${i}` }));
    proxy = await startProxy([procs[0].port]);
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    closeClients();
    await proxy?.close();
    await Promise.allSettled(procs.map((p) => p.kill('SIGKILL')));
    await redis?.stop();
  });

  test('a client of the killed pod reconnects to a survivor, recovered, in its rooms, with every missed message once', async () => {
    const [a, b, c3] = procs;
    const c = client(proxy.url, { token: await token('kill-user') }, RECONNECT);
    await waitFor(c, 'connect', () => true, 10000);
    const sender = await connect(b.url, { token: await token('kill-sender') });
    const witness = await connect(c3.url, { token: await token('kill-witness') });
    const { reconnectMs } = await recoverScenario({
      proxy,
      c,
      sender,
      witness,
      cut: async () => {
        expect(await a.kill('SIGKILL')).toBeNull();
      },
      nextPort: b.port,
    });
    console.log(`SIGKILL: reconnected and recovered on a survivor ${reconnectMs} ms after it became reachable`);
    expect(proxy.routed.get(b.port)).toBe(1);
    expect(a.proc.signalCode).toBe('SIGKILL');
    const members = await witness.emitWithAck('get-room-members', 'r2');
    expect(members.members).toEqual(expect.arrayContaining([{ userId: 'kill-user', sockets: 1 }]));
    expect(members.count).toBe(2);
  });
});
