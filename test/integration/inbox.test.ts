import { randomUUID } from 'crypto';
import Redis from 'ioredis';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  client,
  closeClients,
  collect,
  connect,
  metricValue,
  RunningGateway,
  seenOnce,
  startGateways,
  startWorker,
  token,
  uniquePrefix,
  until,
  waitFor,
} from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';

// Direct messages and the offline inbox (PROTOCOL.md), the same behaviour on both engines:
// one in-memory node, and three gateways sharing Redis (plus a worker for age retention).

jest.setTimeout(60000);

interface Batch {
  messages: Array<{ id: string; from?: string; text?: string; data?: unknown; timestamp: number; event?: string; publishId?: string }>;
  more: boolean;
}

/** A device: a socket whose `queued-messages` and `direct-message` listeners exist before it connects. */
interface Device {
  s: ClientSocket;
  batches: Batch[];
  live: Array<{ id: string; from: string; text?: string; data?: unknown; timestamp: number }>;
}

async function device(url: string, auth: Record<string, unknown>): Promise<Device> {
  const s = client(url, auth, { reconnection: false });
  const batches = collect<Batch>(s, 'queued-messages');
  const live = collect(s, 'direct-message');
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  return { s, batches, live };
}

/** Resolves once the device got the last batch of its replay (`more: false`). */
async function replayed(d: Device, ms = 10000): Promise<Batch['messages']> {
  await until(() => d.batches.length > 0 && d.batches[d.batches.length - 1].more === false, ms, 'the end of the inbox replay');
  return d.batches.flatMap((b) => b.messages);
}

const shape = (d: Device) => d.batches.map((b) => [b.messages.length, b.more]);

describe.each([
  ['memory', 1],
  ['redis', 3],
])('direct messages and the inbox (%s engine)', (engine, n) => {
  let redis: TestRedis | undefined;
  let r: Redis | undefined;
  let urls: string[];
  let prefix: string;
  let stop: () => Promise<void>;
  const extra: Array<() => Promise<void>> = [];
  const url = (i: number) => urls[i % urls.length];
  const tag = () => randomUUID().slice(0, 8);

  beforeAll(async () => {
    if (engine === 'redis') {
      redis = await startRedis();
      r = new Redis(redis.url);
    }
    prefix = uniquePrefix();
    // Rate limits off: these tests send hundreds of messages from one socket on purpose.
    const c = await startGateways(n, {
      REDIS_URL: redis?.url,
      REDIS_KEY_PREFIX: prefix,
      RATE_LIMIT_EVENTS_PER_SECOND: '0',
      SOCKET_WRITE_BYTES_PER_SECOND: '0',
    });
    urls = c.gateways.map((g) => g.url);
    stop = c.stop;
  });
  afterEach(async () => {
    closeClients();
    for (const f of extra.splice(0)) await f();
  });
  afterAll(async () => {
    await stop();
    r?.disconnect();
    await redis?.stop();
  });

  const user = async (id: string, i: number, claims: Record<string, unknown> = {}) => connect(url(i), { token: await token(id, claims) });

  test('an offline user gets every message on connect, oldest first, in batches of 100, until acknowledged', async () => {
    const from = `alice-${tag()}`;
    const to = `bob-${tag()}`;
    await seenOnce(url(0), to);
    const sender = await user(from, 0);
    const acks: Array<{ id: string; timestamp: number }> = [];
    for (let i = 0; i < 250; i++) {
      const ack = await sender.emitWithAck('direct-message', { toUserId: to, text: `m${i}`, data: { i } });
      expect(ack).toEqual({ ok: true, id: expect.any(String), timestamp: expect.any(Number) });
      acks.push(ack);
    }

    // any device, on any pod, gets the whole inbox: 100 + 100 + 50, oldest first
    const d1 = await device(url(1), { token: await token(to) });
    const all = await replayed(d1);
    expect(shape(d1)).toEqual([
      [100, true],
      [100, true],
      [50, false],
    ]);
    expect(all.map((m) => m.id)).toEqual(acks.map((a) => a.id));
    expect(all.map((m) => m.text)).toEqual(acks.map((_, i) => `m${i}`));
    all.forEach((m, i) => expect(m).toEqual({ id: acks[i].id, from, text: `m${i}`, data: { i }, timestamp: acks[i].timestamp }));
    expect(d1.live).toHaveLength(0);

    // nothing acknowledged yet: a second device gets all of it again
    const d2 = await device(url(2), { token: await token(to) });
    expect((await replayed(d2)).map((m) => m.id)).toEqual(acks.map((a) => a.id));

    // acknowledging the first 100 moves the position: the next connect gets the other 150
    expect(await d1.s.emitWithAck('inbox:ack', { upTo: all[99].id })).toEqual({ ok: true, upTo: all[99].id });
    const d3 = await device(url(0), { token: await token(to) });
    const rest = await replayed(d3);
    expect(shape(d3)).toEqual([
      [100, true],
      [50, false],
    ]);
    expect(rest.map((m) => m.id)).toEqual(acks.slice(100).map((a) => a.id));

    // acknowledging backwards does not move the position back; the answer is the position
    expect(await d2.s.emitWithAck('inbox:ack', { upTo: all[10].id })).toEqual({ ok: true, upTo: all[99].id });
    const d4 = await device(url(1), { token: await token(to) });
    expect((await replayed(d4)).map((m) => m.id)).toEqual(acks.slice(100).map((a) => a.id));

    // acknowledging everything: the next device gets one empty batch, and nothing is replayed again
    expect(await d3.s.emitWithAck('inbox:ack', { upTo: all[249].id })).toEqual({ ok: true, upTo: all[249].id });
    expect(await d3.s.emitWithAck('inbox:ack', { upTo: all[0].id })).toEqual({ ok: true, upTo: all[249].id });
    const d5 = await device(url(2), { token: await token(to) });
    await replayed(d5);
    expect(d5.batches).toEqual([{ messages: [], more: false }]);
  });

  test('user ids as identity providers issue them ("auth0|...", "google-oauth2|..."): direct messages, inbox, presence, rooms', async () => {
    const alice = `auth0|${tag()}`;
    const bob = `google-oauth2|${tag()}`;
    await seenOnce(url(0), bob);
    const a = await user(alice, 0);
    expect((await a.emitWithAck('join-room', 'idp-room')).ok).toBe(true);
    const id = (await a.emitWithAck('direct-message', { toUserId: bob, text: 'hi' })).id as string;
    const b = await device(url(1), { token: await token(bob) });
    expect((await replayed(b)).map((m) => [m.id, m.from])).toEqual([[id, alice]]);
    expect(await b.s.emitWithAck('get-presence', [alice, bob])).toEqual({
      ok: true,
      users: [
        { userId: alice, status: 'online', lastSeen: expect.any(Number) },
        { userId: bob, status: 'online', lastSeen: expect.any(Number) },
      ],
    });
    expect(await b.s.emitWithAck('join-room', 'idp-room')).toMatchObject({ ok: true, members: 2 });
    expect((await a.emitWithAck('get-room-members', 'idp-room')).members.map((m: { userId: string }) => m.userId).sort()).toEqual(
      [alice, bob].sort(),
    );
  });

  test('inbox:ack of an id beyond the newest message stops at the newest: later messages are still replayed', async () => {
    const to = `fran-${tag()}`;
    await seenOnce(url(0), to);
    const sender = await user(`gus-${tag()}`, 0);
    const rx = await device(url(1), { token: await token(to) });
    await replayed(rx);
    // nothing in the inbox yet: nothing to acknowledge
    expect(await rx.s.emitWithAck('inbox:ack', { upTo: '9999999999999-0' })).toEqual({ ok: true, upTo: '0-0' });
    const first = (await sender.emitWithAck('direct-message', { toUserId: to, text: 'one' })).id as string;
    expect(await rx.s.emitWithAck('inbox:ack', { upTo: '9999999999999-0' })).toEqual({ ok: true, upTo: first });
    const later = (await sender.emitWithAck('direct-message', { toUserId: to, text: 'two' })).id as string;
    rx.s.disconnect();
    const again = await device(url(2), { token: await token(to) });
    expect((await replayed(again)).map((m) => m.id)).toEqual([later]);
  });

  test('a device passing auth.inboxSince gets what it missed after that id, whatever the acknowledged position', async () => {
    const to = `carol-${tag()}`;
    await seenOnce(url(0), to);
    const sender = await user(`dave-${tag()}`, 0);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await sender.emitWithAck('direct-message', { toUserId: to, text: `n${i}` })).id);
    const phone = await device(url(1), { token: await token(to) });
    expect((await replayed(phone)).map((m) => m.id)).toEqual(ids);
    expect(await phone.s.emitWithAck('inbox:ack', { upTo: ids[1] })).toEqual({ ok: true, upTo: ids[1] });

    // newer than the acknowledged position
    const laptop = await device(url(2), { token: await token(to), inboxSince: ids[2] });
    expect((await replayed(laptop)).map((m) => m.id)).toEqual(ids.slice(3));
    // older than the acknowledged position: the device asked for it, so it gets it
    const tablet = await device(url(0), { token: await token(to), inboxSince: ids[0] });
    expect((await replayed(tablet)).map((m) => m.id)).toEqual(ids.slice(1));
    // the newest id: nothing missed
    const watch = await device(url(1), { token: await token(to), inboxSince: ids[4] });
    await replayed(watch);
    expect(watch.batches).toEqual([{ messages: [], more: false }]);
    // without inboxSince (or with one that is not a message id): from the acknowledged position
    const desk = await device(url(2), { token: await token(to) });
    expect((await replayed(desk)).map((m) => m.id)).toEqual(ids.slice(2));
    const odd = await device(url(0), { token: await token(to), inboxSince: 'yesterday' });
    expect((await replayed(odd)).map((m) => m.id)).toEqual(ids.slice(2));
  });

  test('a connected recipient gets direct-message live on every socket, on any pod, once', async () => {
    const from = `erin-${tag()}`;
    const to = `frank-${tag()}`;
    await seenOnce(url(0), to);
    const sender = await user(from, 0);
    const devices = [
      await device(url(0), { token: await token(to) }),
      await device(url(1), { token: await token(to) }),
      await device(url(2), { token: await token(to) }),
    ];
    for (const d of devices) await replayed(d);
    const other = await device(url(1), { token: await token(`grace-${tag()}`) });
    const senderGot = collect(sender, 'direct-message');

    const ack = await sender.emitWithAck('direct-message', { toUserId: to, text: 'hi', data: { k: [1, 2] } });
    expect(ack).toEqual({ ok: true, id: expect.any(String), timestamp: expect.any(Number) });
    await until(() => devices.every((d) => d.live.length === 1), 5000, 'live delivery on every socket');
    for (const d of devices) expect(d.live[0]).toEqual({ id: ack.id, from, text: 'hi', data: { k: [1, 2] }, timestamp: ack.timestamp });

    // a second message (no text) proves the first came once and nothing else was in flight
    const ack2 = await sender.emitWithAck('direct-message', { toUserId: to, data: 7 });
    await until(() => devices.every((d) => d.live.length === 2), 5000, 'the second message');
    for (const d of devices) expect(d.live.map((m) => m.id)).toEqual([ack.id, ack2.id]);
    expect(devices[0].live[1]).toEqual({ id: ack2.id, from, data: 7, timestamp: ack2.timestamp });
    expect(other.live).toHaveLength(0);
    expect(senderGot).toHaveLength(0);

    // live delivery does not replace the inbox: a device connecting now still gets both
    const late = await device(url(2), { token: await token(to) });
    expect((await replayed(late)).map((m) => m.id)).toEqual([ack.id, ack2.id]);
  });

  test('validation answers the PROTOCOL.md codes and writes nothing', async () => {
    const to = `heidi-${tag()}`;
    await seenOnce(url(0), to);
    const s = await user(`ivan-${tag()}`, 0);
    const code = async (event: string, payload: unknown) =>
      ((await s.emitWithAck(event, payload)) as { ok: boolean; error?: { code: string; message: string } }).error?.code;
    for (const bad of ['has space', '', 'x'.repeat(256), 'a{b}', 42, null])
      expect(await code('direct-message', { toUserId: bad, text: 'x' })).toBe('bad_request');
    expect(await code('direct-message', { text: 'no recipient' })).toBe('bad_request');
    expect(await code('direct-message', { toUserId: to, text: 'x', extra: true })).toBe('bad_request');
    expect(await code('direct-message', { toUserId: to, text: 5 })).toBe('bad_request');
    expect(await code('direct-message', 'not an object')).toBe('bad_request');
    expect(await code('direct-message', [to, 'x'])).toBe('bad_request');
    expect(await code('direct-message', { toUserId: to, text: 'x'.repeat(16385) })).toBe('too_large');
    expect(await code('direct-message', { toUserId: to, text: 'x'.repeat(10000), data: 'y'.repeat(7000) })).toBe('too_large');
    const tooLarge = await s.emitWithAck('direct-message', { toUserId: to, data: { blob: 'z'.repeat(17000) } });
    expect(tooLarge).toEqual({ ok: false, error: { code: 'too_large', message: expect.any(String) } });
    for (const bad of [{ upTo: 'last' }, { upTo: '1-x' }, { upTo: '-1-0' }, { upTo: 5 }, {}, { upTo: '1-0', more: true }, 'string', null]) {
      const res = await s.emitWithAck('inbox:ack', bad);
      expect(res).toEqual({ ok: false, error: { code: 'bad_request', message: expect.any(String) } });
    }
    // a user id nobody ever connected as: not_found, nothing written for it
    const ghost = `ghost-${tag()}`;
    expect(await code('direct-message', { toUserId: ghost, text: 'to nobody' })).toBe('not_found');
    if (r) expect(await r.exists(`${prefix}:inbox:{/|${ghost}}`)).toBe(0);
    // without an ack the event is processed all the same (acks are optional); the socket keeps working
    s.emit('direct-message', { toUserId: to, text: 'no ack' });
    const refused = waitFor(s, 'request-error');
    s.emit('direct-message', { toUserId: to, text: 5 });
    expect(await refused).toEqual({ event: 'direct-message', error: { code: 'bad_request', message: expect.any(String) } });
    const ok = await s.emitWithAck('direct-message', { toUserId: to, text: 'the last one' });
    expect(ok.ok).toBe(true);
    expect(s.connected).toBe(true);
    // nothing of the refused ones reached the inbox
    const d = await device(url(1), { token: await token(to) });
    expect((await replayed(d)).map((m) => m.text)).toEqual(['no ack', 'the last one']);
    if (r) expect(await r.xlen(`${prefix}:inbox:{/|${to}}`)).toBe(2);
  });

  test('retention by count: INBOX_MAX_LEN=5 keeps the newest 5', async () => {
    const p = uniquePrefix();
    const c = await startGateways(n, { REDIS_URL: redis?.url, REDIS_KEY_PREFIX: p, RATE_LIMIT_EVENTS_PER_SECOND: '0', INBOX_MAX_LEN: '5' });
    extra.push(c.stop);
    const to = `judy-${tag()}`;
    await seenOnce(c.gateways[0].url, to);
    const s = await connect(c.gateways[0].url, { token: await token(`ken-${tag()}`) });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await s.emitWithAck('direct-message', { toUserId: to, text: `r${i}` })).id);
    const d = await device(c.gateways[n - 1].url, { token: await token(to) });
    const got = await replayed(d);
    expect(got.map((m) => m.id)).toEqual(ids.slice(15));
    expect(got.map((m) => m.text)).toEqual(['r15', 'r16', 'r17', 'r18', 'r19']);
    if (r) expect(await r.xlen(`${p}:inbox:{/|${to}}`)).toBe(5);
  });

  test('retention by age: messages older than INBOX_MAX_AGE_MS are trimmed and counted', async () => {
    const AGE = 3000;
    const p = uniquePrefix();
    const c = await startGateways(n, { REDIS_URL: redis?.url, REDIS_KEY_PREFIX: p, INBOX_MAX_AGE_MS: String(AGE) });
    extra.push(c.stop);
    // On Redis the worker enforces age retention; a single node does it itself.
    let trimmer: RunningGateway['metrics'] = c.gateways[0].metrics;
    if (engine === 'redis') {
      const w = await startWorker({ REDIS_URL: redis!.url, REDIS_KEY_PREFIX: p, POD_NAME: `${p}-worker`, INBOX_MAX_AGE_MS: String(AGE) });
      extra.push(w.stop);
      trimmer = w.metrics;
    }
    const to = `leo-${tag()}`;
    await seenOnce(c.gateways[0].url, to);
    const s = await connect(c.gateways[0].url, { token: await token(`mia-${tag()}`) });
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) expect((await s.emitWithAck('direct-message', { toUserId: to, text: `old${i}` })).ok).toBe(true);
    // Age is the one thing here that has no event: let the old messages grow older (not past AGE yet).
    await new Promise((res) => setTimeout(res, Math.max(0, t0 + AGE - 500 - Date.now())));
    const fresh = await s.emitWithAck('direct-message', { toUserId: to, text: 'fresh' });
    // a retention pass (every second) drops the three old ones once they are older than AGE
    await until(async () => (await metricValue(trimmer, 'realtime_inbox_retention_trimmed_total')) >= 3, 5000, 'the age retention pass');
    expect(await metricValue(trimmer, 'realtime_inbox_retention_trimmed_total')).toBe(3);
    const d = await device(c.gateways[n - 1].url, { token: await token(to) });
    expect(await replayed(d)).toEqual([{ id: fresh.id, from: expect.any(String), text: 'fresh', timestamp: fresh.timestamp }]);
    if (r) expect(await r.xlen(`${p}:inbox:{/|${to}}`)).toBe(1);
  });

  test('inboxes are per namespace: a workspace inbox never leaks into / or another workspace', async () => {
    const to = `nina-${tag()}`;
    const claims = { workspaces: ['a', 'b'] };
    await seenOnce(`${url(0)}/workspace-a`, to, claims);
    await seenOnce(url(0), to, claims);
    const s = await connect(`${url(0)}/workspace-a`, { token: await token(`oscar-${tag()}`, { workspaces: ['a'] }) });
    const ack = await s.emitWithAck('direct-message', { toUserId: to, text: 'in a' });
    expect(ack.ok).toBe(true);
    const inA = await device(`${url(1)}/workspace-a`, { token: await token(to, claims) });
    const inB = await device(`${url(2)}/workspace-b`, { token: await token(to, claims) });
    const inRoot = await device(url(0), { token: await token(to, claims) });
    expect((await replayed(inA)).map((m) => m.id)).toEqual([ack.id]);
    await replayed(inB);
    await replayed(inRoot);
    expect(inB.batches).toEqual([{ messages: [], more: false }]);
    expect(inRoot.batches).toEqual([{ messages: [], more: false }]);
    // live too: only the workspace-a socket gets it
    const ack2 = await s.emitWithAck('direct-message', { toUserId: to, text: 'live in a' });
    await until(() => inA.live.some((m) => m.id === ack2.id), 5000, 'live delivery in workspace-a');
    const probe = await (await user(`pat-${tag()}`, 1)).emitWithAck('direct-message', { toUserId: to, text: 'probe in /' });
    await until(() => inRoot.live.some((m) => m.id === probe.id), 5000, 'probe');
    expect(inRoot.live.map((m) => m.id)).toEqual([probe.id]);
    expect(inB.live).toHaveLength(0);
  });
});
