import type { Socket as ClientSocket } from 'socket.io-client';
import { client, closeClients, connect, metricValue, RunningGateway, startGateways, token, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// Recovery is bound to its user, re-authorized and bounded (issue #12, PROTOCOL.md "Connecting"):
// a session comes back only for the same `sub`, its rooms are checked against the new token, a
// client that leaves on purpose ends it, and a restore that would read or replay too much, or an
// offset from outside the window, gives a fresh session instead. Both engines.

jest.setTimeout(60000);

const RECONNECT = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0 };
const pidOf = (s: ClientSocket) => (s as unknown as { _pid?: string })._pid;
const offsetOf = (s: ClientSocket) => (s as unknown as { _lastOffset?: string })._lastOffset;

function texts(s: ClientSocket): string[] {
  const out: string[] = [];
  s.on('message', (m: { text: string }) => out.push(m.text));
  return out;
}

describe.each(['memory', 'redis'])('recovery bounds (%s engine)', (engine) => {
  let redis: TestRedis | undefined;
  let gws: RunningGateway[];
  let stop: () => Promise<void>;

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const c = await startGateways(engine === 'redis' ? 2 : 1, { REDIS_URL: redis?.url, RECOVERY_MAX_MISSED: '20' });
    gws = c.gateways;
    stop = c.stop;
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    await stop?.();
    await redis?.stop();
  });
  const last = () => gws[gws.length - 1];
  const refused = (reason: string) =>
    Promise.all(gws.map((g) => metricValue(g.metrics, 'realtime_gateway_recovery_refused_total', { reason }))).then((v) =>
      v.reduce((a, b) => a + b, 0),
    );

  /** alice in room `secret`, with a session; a sender in the room too. */
  async function aliceInRoom(room: string) {
    const alice = client(gws[0].url, { token: await token('alice') }, RECONNECT);
    await Promise.all([waitFor(alice, 'connect'), waitFor(alice, 'session')]);
    expect(await alice.emitWithAck('join-room', room)).toMatchObject({ ok: true });
    const sender = await connect(last().url, { token: await token('sender') });
    expect(await sender.emitWithAck('message', { roomId: room, text: 'hello' })).toMatchObject({ ok: true });
    await until(() => offsetOf(alice) !== undefined && pidOf(alice) !== undefined, 5000, 'an offset at alice');
    return { alice, sender };
  }

  test("another user presenting alice's pid and offset gets a fresh session, none of alice's rooms or messages", async () => {
    const { alice, sender } = await aliceInRoom('secret-1');
    // (the single node keeps a session only once its socket dropped: there, eve finds none at all)
    const reasons = () => Promise.all([refused('other_user'), refused('no_session')]).then(([a, b]) => a + b);
    const before = await reasons();
    const eve = await connect(last().url, { token: await token('eve'), pid: pidOf(alice), offset: offsetOf(alice) });
    const got = texts(eve);
    expect(await sender.emitWithAck('message', { roomId: 'secret-1', text: 'for alice only' })).toMatchObject({ ok: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual([]);
    expect(await reasons()).toBe(before + 1);
    if (engine === 'redis') expect(await refused('other_user')).toBeGreaterThanOrEqual(1);
    expect(alice.connected).toBe(true);
  });

  test('a client that disconnects on purpose ends its session: the same client object logging in as another user is not recovered', async () => {
    const { alice, sender } = await aliceInRoom('secret-2');
    alice.disconnect();
    await new Promise((r) => setTimeout(r, 100));
    alice.auth = { token: await token('eve') };
    alice.connect();
    await waitFor(alice, 'connect');
    expect(alice.recovered).toBe(false);
    const got = texts(alice);
    expect(await sender.emitWithAck('message', { roomId: 'secret-2', text: 'still for alice only' })).toMatchObject({ ok: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual([]);
  });

  test('recovered rooms are checked against the new token: a room no longer allowed is left (the client is told), the others come back', async () => {
    const c = client(gws[0].url, { token: await token('rita', { rooms: ['keep', 'drop'] }) }, RECONNECT);
    await Promise.all([waitFor(c, 'connect'), waitFor(c, 'session')]);
    for (const r of ['keep', 'drop']) expect(await c.emitWithAck('join-room', r)).toMatchObject({ ok: true });
    const sender = await connect(last().url, { token: await token('sender-2') });
    const got = texts(c);
    const narrower = await token('rita', { rooms: ['keep'] });
    c.auth = (cb: (a: object) => void) => cb({ token: narrower });
    const revoked = waitFor<{ rooms: string[] }>(c, 'rooms-revoked', () => true, 10000);
    c.io.engine.close(); // the transport drops: the client reconnects by itself
    await waitFor(c, 'connect', () => true, 10000);
    expect(c.recovered).toBe(true);
    expect((await revoked).rooms).toEqual(['drop']);
    expect(await sender.emitWithAck('message', { roomId: 'drop', text: 'in drop' })).toMatchObject({ ok: true });
    expect(await sender.emitWithAck('message', { roomId: 'keep', text: 'in keep' })).toMatchObject({ ok: true });
    await until(() => got.includes('in keep'), 5000, 'the message in the kept room');
    expect(got).not.toContain('in drop');
    const members = await sender.emitWithAck('get-room-members', 'drop');
    expect(members.members.map((m: { userId: string }) => m.userId)).not.toContain('rita');
  });

  test('a restore that would replay more than RECOVERY_MAX_MISSED packets gives a fresh session, counted', async () => {
    const { alice, sender } = await aliceInRoom('busy');
    const before = await refused(engine === 'redis' ? 'too_many_missed' : 'expired');
    alice.io.reconnection(false);
    alice.io.engine.close();
    await until(() => !alice.connected, 5000, 'alice away');
    for (let i = 0; i < 30; i++) expect(await sender.emitWithAck('message', { roomId: 'busy', text: `m${i}` })).toMatchObject({ ok: true });
    alice.io.reconnection(true);
    alice.connect();
    await waitFor(alice, 'connect', () => true, 10000);
    if (engine === 'redis') {
      expect(alice.recovered).toBe(false);
      expect(await refused('too_many_missed')).toBe(before + 1);
    } else expect(alice.recovered).toBe(true); // the single node has no such cap (its packets are in memory)
  });

  test('an offset that is not ours, or older than the window, gives a fresh session', async () => {
    const { alice } = await aliceInRoom('window');
    const pid = pidOf(alice);
    const bad = await connect(last().url, { token: await token('alice'), pid, offset: 'not-an-offset' });
    const stale = await connect(last().url, { token: await token('alice'), pid, offset: engine === 'redis' ? '1' : 'zzz' });
    for (const s of [bad, stale]) expect(s.connected).toBe(true);
    if (engine === 'redis') {
      expect(await refused('bad_offset')).toBeGreaterThanOrEqual(1);
      expect(await refused('expired')).toBeGreaterThanOrEqual(1);
    }
  });
});
