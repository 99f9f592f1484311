import { io as ioc, Socket as ClientSocket } from 'socket.io-client';
import { closeClients, RunningGateway, startGateways, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// A client written from the seed's patterns (../shared/seed/websocket-patterns-reference.md) runs
// unchanged: `auth: { userId }` (the insecure development mode the seed assumes), events emitted
// without ack callbacks (join-room, message, leave-room), get-presence with a callback, and the
// queued messages delivered on connect. Acks are optional (PROTOCOL.md, Acknowledgements): without
// one an event is processed exactly the same, and a refusal comes back as `request-error`.

jest.setTimeout(60000);

const opened: ClientSocket[] = [];
/** The seed's client: io(url, { auth: { userId } }), nothing else. */
function seedClient(url: string, userId: string): ClientSocket {
  const socket = ioc(url, { auth: { userId }, forceNew: true });
  opened.push(socket);
  return socket;
}

describe.each([
  ['memory', 1],
  ['redis', 2],
])('the seed client patterns (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  let gws: RunningGateway[];
  let stop: () => Promise<void>;

  beforeAll(async () => {
    if (engine === 'redis') redis = await startRedis();
    const c = await startGateways(n, { REDIS_URL: redis?.url, AUTH_MODE: 'insecure', JWT_SECRET: undefined });
    gws = c.gateways;
    stop = c.stop;
  });
  afterEach(() => {
    for (const s of opened.splice(0)) s.disconnect();
    closeClients();
  });
  afterAll(async () => {
    await stop?.();
    await redis?.stop();
  });
  const url = (i: number) => gws[i % gws.length].url;

  test('join, message and leave without acks; get-presence with a callback; queued messages on connect', async () => {
    const alice = seedClient(url(0), 'alice');
    const bob = seedClient(url(1), 'bob');
    await Promise.all([waitFor(alice, 'connect'), waitFor(bob, 'connect')]);

    // socket.emit('join-room', roomId): the socket gets `joined`, the others `user-joined`
    const aliceJoined = waitFor(alice, 'joined');
    alice.emit('join-room', 'room123');
    expect(await aliceJoined).toEqual({ room: 'room123' });
    const userJoined = waitFor(alice, 'user-joined');
    const bobJoined = waitFor(bob, 'joined');
    bob.emit('join-room', 'room123');
    expect(await bobJoined).toEqual({ room: 'room123' });
    expect(await userJoined).toMatchObject({ room: 'room123', userId: 'bob' });

    // socket.emit('message', { roomId, text }): everyone in the room gets it
    const atAlice = waitFor(alice, 'message');
    const atBob = waitFor(bob, 'message');
    alice.emit('message', { roomId: 'room123', text: 'hello from the seed' });
    for (const m of [await atAlice, await atBob])
      expect(m).toMatchObject({ room: 'room123', userId: 'alice', text: 'hello from the seed' });

    // socket.emit('get-presence', friendIds, callback)
    const presence = await new Promise<{ ok: boolean; users: Array<{ userId: string; status: string }> }>((resolve) =>
      alice.emit('get-presence', ['bob', 'carol'], resolve),
    );
    expect(presence.ok).toBe(true);
    expect(presence.users.map((u) => [u.userId, u.status])).toEqual([
      ['bob', 'online'],
      ['carol', 'offline'],
    ]);

    // socket.emit('leave-room', roomId): the others get `user-left`
    const left = waitFor(alice, 'user-left');
    bob.emit('leave-room', 'room123');
    expect(await left).toMatchObject({ room: 'room123', userId: 'bob' });

    // a refused event without an ack comes back as request-error
    const refusal = waitFor(alice, 'request-error');
    alice.emit('join-room', 'bad room!');
    expect(await refusal).toEqual({ event: 'join-room', error: { code: 'bad_request', message: expect.any(String) } });

    // queued messages: a direct message to carol while she is away (she was here once) arrives when she connects
    const first = seedClient(url(0), 'carol');
    await waitFor(first, 'connect');
    await until(async () => (await first.emitWithAck('get-presence', ['carol'])).users[0].status === 'online', 5000, 'carol seen');
    first.disconnect();
    const carolMissed = new Promise<void>((resolve) =>
      alice.emit('direct-message', { toUserId: 'carol', text: 'while you were away' }, () => resolve()),
    );
    await carolMissed;
    const carol = seedClient(url(1), 'carol');
    const queued = await waitFor<{ messages: Array<{ from: string; text: string }>; more: boolean }>(
      carol,
      'queued-messages',
      () => true,
      10000,
    );
    expect(queued.messages.map((m) => [m.from, m.text])).toEqual([['alice', 'while you were away']]);
    await until(() => carol.connected, 5000, 'carol connected');
  });
});
