import Redis from 'ioredis';
import path from 'path';
import type { Socket as ClientSocket } from 'socket.io-client';
import { compareIds, decodeVector, type EntryId, type Vector } from '../../services/core/adapter/offsets';
import { Shards } from '../../services/core/adapter/shards';
import { clientRoom } from '../../services/core/redis/keys';
import { client, closeClients, connect, metricValue, RunningGateway, startGateways, token, until, waitFor } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';
import { startRedisCluster, TestRedisCluster } from '../helpers/redis-cluster';

// The sharded adapter (docs/ARCHITECTURE.md, "Room traffic"): a pod pays for a room message only
// when it holds a member of the room; a message to several rooms reaches each recipient once,
// across pods; a live feed that breaks mid-traffic loses nothing; room traffic spreads over the
// masters of a Redis Cluster. On a single redis-server and on a 3-master cluster.

jest.setTimeout(90000);

type Env = { REDIS_URL: string; REDIS_CLUSTER?: string };

/** Rooms whose shards differ (so a test covers several shards at once). */
function roomsOnDistinctShards(prefix: string, shards: number, n: number): string[] {
  const s = new Shards(prefix, shards);
  const out: string[] = [];
  const used = new Set<number>();
  for (let i = 0; out.length < n; i++) {
    const room = `room-${i}`;
    const shard = s.of('/', clientRoom(room));
    if (used.has(shard)) continue;
    used.add(shard);
    out.push(room);
  }
  return out;
}

/** Sends `text` into `room` and resolves with the position vector `member` got with it. */
async function offsetOf(member: ClientSocket, sender: ClientSocket, room: string, text: string, shards = 16): Promise<Vector> {
  const got = new Promise<unknown[]>((resolve) => {
    const on = (...args: unknown[]) => {
      if ((args[0] as { text?: string })?.text !== text) return;
      member.off('message', on);
      resolve(args);
    };
    member.on('message', on);
  });
  expect(await sender.emitWithAck('message', { roomId: room, text })).toMatchObject({ ok: true });
  const args = await got;
  return decodeVector(args[args.length - 1], shards)!;
}

function tally(s: ClientSocket): Map<string, number> {
  const seen = new Map<string, number>();
  s.on('message', (m: { id: string }) => seen.set(m.id, (seen.get(m.id) ?? 0) + 1));
  return seen;
}

describe.each([
  ['a single redis-server', 'single'],
  ['a 3-master redis cluster', 'cluster'],
])('the sharded adapter on %s', (_name, kind) => {
  let redis: TestRedis | undefined;
  let cluster: TestRedisCluster | undefined;
  let env: Env;
  let gws: RunningGateway[];
  let stop: () => Promise<void>;
  let prefix: string;

  beforeAll(async () => {
    if (kind === 'single') {
      redis = await startRedis();
      env = { REDIS_URL: redis.url };
    } else {
      cluster = await startRedisCluster();
      env = { REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' };
    }
    const started = await startGateways(3, env);
    gws = started.gateways;
    stop = started.stop;
    prefix = gws[0].cfg.keyPrefix;
  });
  afterEach(() => closeClients());
  afterAll(async () => {
    await stop?.();
    await redis?.stop();
    await cluster?.stop();
  });

  const user = async (name: string, gw: number) => connect(gws[gw].url, { token: await token(name) });
  /** A member of `room` on pod 0 and a sender (not a member) on pod 1. */
  const memberAndSender = async (prefix: string, room: string) => {
    const member = await user(`${prefix}-a`, 0);
    expect(await member.emitWithAck('join-room', room)).toMatchObject({ ok: true });
    return { member, sender: await user(`${prefix}-s`, 1) };
  };
  const received = (gw: number) => metricValue(gws[gw].metrics, 'realtime_adapter_entries_received_total');

  test('a pod with no member of a room receives nothing for it, while its members get every message', async () => {
    const a = await user('alice', 0);
    const b = await user('bob', 1);
    const outsider = await user('olga', 2); // connected to gateway 2, in no room
    for (const s of [a, b]) expect(await s.emitWithAck('join-room', 'quiet-pod')).toMatchObject({ ok: true });
    const seen = tally(b);
    const before = [await received(0), await received(1), await received(2)];
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await a.emitWithAck('message', { roomId: 'quiet-pod', text: `m${i}` })).id);
    await until(() => ids.every((id) => seen.get(id) === 1), 10000, 'every message at bob');
    const after = [await received(0), await received(1), await received(2)];
    // gateway 0 (the sender's, a member) and 1 (a member) received them; gateway 2 nothing
    expect(after[0] - before[0]).toBeGreaterThanOrEqual(50);
    expect(after[1] - before[1]).toBeGreaterThanOrEqual(50);
    expect(after[2] - before[2]).toBe(0);
    expect(await metricValue(gws[2].metrics, 'realtime_adapter_entries_skipped_total')).toBe(0);
    expect(outsider.connected).toBe(true);
  });

  test('a message to rooms on several shards reaches each recipient once, on every pod', async () => {
    const rooms = roomsOnDistinctShards(prefix, gws[0].cfg.adapterShards, 3);
    const members = await Promise.all([user('ann', 0), user('ben', 1), user('cat', 2)]);
    // ann in all three rooms, ben in two, cat in one
    for (const r of rooms) expect(await members[0].emitWithAck('join-room', r)).toMatchObject({ ok: true });
    for (const r of rooms.slice(1)) expect(await members[1].emitWithAck('join-room', r)).toMatchObject({ ok: true });
    expect(await members[2].emitWithAck('join-room', rooms[2])).toMatchObject({ ok: true });
    const seen = members.map(tally);
    const sender = await user('sam', 1);
    const ack = await sender.emitWithAck('message', { roomIds: rooms, text: 'to all three' });
    expect(ack).toMatchObject({ ok: true });
    await until(() => seen.every((s) => s.get(ack.id) === 1), 10000, 'the message at every member');
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive right behind
    expect(seen.map((s) => s.get(ack.id))).toEqual([1, 1, 1]);
  });

  test('a room message is framed once: every websocket recipient on a pod sends the same pre-encoded frame', async () => {
    type Sent = { data?: unknown; options?: { wsPreEncodedFrame?: unknown } };
    // engine.io's websocket transport (not exported by the package; it sits beside its entry point)
    const transportFile = path.join(path.dirname(require.resolve('engine.io')), 'transports/websocket.js');
    const proto = (require(transportFile) as { WebSocket: { prototype: { send(p: Sent[]): void } } }).WebSocket.prototype;
    const original = proto.send;
    const frames: unknown[] = [];
    const marker = `framed-once-${Date.now()}`;
    proto.send = function (this: unknown, packets: Sent[]) {
      for (const p of packets) if (typeof p.data === 'string' && p.data.includes(marker)) frames.push(p.options?.wsPreEncodedFrame);
      return original.call(this, packets);
    };
    try {
      const members = await Promise.all([user('fay', 1), user('gus', 1), user('hal', 1)]);
      for (const m of members) expect(await m.emitWithAck('join-room', 'framed')).toMatchObject({ ok: true });
      const seen = members.map(tally);
      const sender = await user('ivy', 0);
      const ack = await sender.emitWithAck('message', { roomId: 'framed', text: marker });
      expect(ack).toMatchObject({ ok: true });
      await until(() => seen.every((x) => x.get(ack.id) === 1), 10000, 'the message at every member');
      expect(frames).toHaveLength(3);
      expect(frames[0]).toBeDefined();
      expect(frames.every((f) => f === frames[0])).toBe(true);
    } finally {
      proto.send = original;
    }
  });

  test('a recovery while its live feed is broken, then the gap fill: the recovered socket gets each missed message once', async () => {
    const room = 'gap-restore';
    const member = await user('mia', 0); // gateway 0 holds the room's live feed
    expect(await member.emitWithAck('join-room', room)).toMatchObject({ ok: true });
    const tok = await token('cid');
    const first = client(gws[1].url, { token: tok }, { reconnection: false });
    await waitFor(first, 'connect');
    expect(await first.emitWithAck('join-room', room)).toMatchObject({ ok: true });
    const sender = await user('sol', 1);
    const seenFirst = tally(first);
    const warm = await sender.emitWithAck('message', { roomId: room, text: 'before' });
    await until(() => seenFirst.get(warm.id) === 1, 5000, 'the first message');
    const firstId = first.id;
    const pid = (first as unknown as { _pid: string })._pid;
    const offset = (first as unknown as { _lastOffset: string })._lastOffset;
    // gateway 0's link of the room's shard breaks (what a Redis restart or a cut connection does):
    // what arrives is held until the gap is filled
    type HubInternals = { onDown(shard: number): void; onUp(shard: number): Promise<void> };
    const hub = (gws[0].gateway.io.of('/').adapter as unknown as { hub: HubInternals }).hub;
    const shard = new Shards(prefix, gws[0].cfg.adapterShards).of('/', clientRoom(room));
    hub.onDown(shard);
    (first.io.engine as unknown as { close(): void }).close(); // a transport close: the session stays
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await sender.emitWithAck('message', { roomId: room, text: `missed ${i}` })).id);
    const seenByMember = tally(member);
    // the client recovers on gateway 0 during the gap: its restore replays the three
    const again = client(gws[0].url, { token: tok, pid, offset }, { reconnection: false });
    const seen = tally(again);
    await waitFor(again, 'connect');
    expect(again.id).toBe(firstId); // recovered (a fresh client object cannot tell `recovered` itself)
    await until(() => ids.every((id) => seen.get(id) === 1), 5000, 'the missed messages replayed');
    // the link is back: the gap is filled for every member, the recovered socket included
    await hub.onUp(shard);
    await until(() => ids.every((id) => seenByMember.get(id) === 1), 5000, 'the gap filled for the member');
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive right behind
    expect(ids.map((id) => seen.get(id))).toEqual([1, 1, 1]);
    expect(ids.map((id) => seenByMember.get(id))).toEqual([1, 1, 1]);
    const after = await sender.emitWithAck('message', { roomId: room, text: 'after' });
    await until(() => seen.get(after.id) === 1 && seenByMember.get(after.id) === 1, 5000, 'live again for both');
  });

  test('a live feed that drops again while its gap is being filled: what was published meanwhile is filled too', async () => {
    const room = 'gap-twice';
    const member = await user('max', 0);
    expect(await member.emitWithAck('join-room', room)).toMatchObject({ ok: true });
    const seen = tally(member);
    const sender = await user('sue', 1);
    const first = await sender.emitWithAck('message', { roomId: room, text: 'first' });
    await until(() => seen.get(first.id) === 1, 5000, 'the first message');
    type LinkInternals = { isUp: boolean; restart(): void };
    type HubInternals = { links: LinkInternals[]; readGap(...args: unknown[]): Promise<unknown> };
    const hub = (gws[0].gateway.io.of('/').adapter as unknown as { hub: HubInternals }).hub;
    const link = hub.links[new Shards(prefix, gws[0].cfg.adapterShards).of('/', clientRoom(room))];
    // The fill's history read is slow (held here until released): the link drops again meanwhile.
    const readGap = hub.readGap;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reading!: () => void;
    const inFill = new Promise<void>((r) => (reading = r));
    hub.readGap = async function (this: unknown, ...args: unknown[]) {
      reading();
      await released;
      return readGap.apply(this, args);
    };
    try {
      link.restart(); // first drop: a gap, filled once the link is back
      await until(() => !link.isUp, 2000, 'the link down');
      const during1 = await sender.emitWithAck('message', { roomId: room, text: 'during the first drop' });
      await inFill; // the link is back and its fill reads the gap (up to a barrier taken now)
      let during2: { id: string } | undefined;
      for (let attempt = 0; attempt < 5 && !during2; attempt++) {
        link.restart(); // second drop, during the fill
        await until(() => !link.isUp, 2000, 'the link down again');
        const ack = await sender.emitWithAck('message', { roomId: room, text: 'during the second drop' });
        if (!link.isUp)
          during2 = ack; // published while nothing was subscribed: it never arrives live
        else await sender.emitWithAck('message', { roomId: room, text: 'too late, try again' });
      }
      expect(during2).toBeDefined();
      await until(() => link.isUp, 5000, 'the link back');
      release();
      await until(() => seen.get(during1.id) === 1 && seen.get(during2!.id) === 1, 10000, 'both gaps filled');
    } finally {
      release();
      hub.readGap = readGap;
    }
    const after = await sender.emitWithAck('message', { roomId: room, text: 'after' });
    await until(() => seen.get(after.id) === 1, 5000, 'live again');
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
  });

  test('a barrier asked while its link is down is answered once the link is back, without restarting it', async () => {
    type LinkInternals = { isUp: boolean; generation: number; restart(): void };
    type HubInternals = { links: LinkInternals[]; barrier(shard: number): Promise<{ ms: number; seq: number }> };
    const hub = (gws[0].gateway.io.of('/').adapter as unknown as { hub: HubInternals }).hub;
    const shard = 3;
    const link = hub.links[shard];
    link.restart();
    await until(() => !link.isUp, 2000, 'the link down');
    const generation = link.generation;
    const t0 = Date.now();
    const answer = await hub.barrier(shard); // its answer would have gone to the dropped connection
    expect(Date.now() - t0).toBeLessThan(3000); // not the 5 s timeout
    expect(answer.ms).toBeGreaterThanOrEqual(0);
    await new Promise((r) => setTimeout(r, 6000)); // past the barrier timeout: nothing restarts the link
    expect(link.isUp).toBe(true);
    expect(link.generation).toBe(generation + 1);
  });

  test('a join into a room live on the pod takes its floor from the live feed, without a barrier, and exactly', async () => {
    type Internals = { whenLive(rooms: string[]): Promise<Map<string, EntryId>>; shardOf(room: string): number };
    const adapter = gws[0].gateway.io.of('/').adapter as unknown as Internals;
    const floors = (how: string) => metricValue(gws[0].metrics, 'realtime_adapter_floors_total', { how });
    const room = 'floor-room';
    const shard = adapter.shardOf(clientRoom(room));
    const { member, sender } = await memberAndSender('floor', room);
    const before = await offsetOf(member, sender, room, 'before');
    const [known0, barrier0] = [await floors('known'), await floors('barrier')];
    // The room is live on pod 0: its floor is where pod 0 stands, with no round trip to Redis.
    const floor = (await adapter.whenLive([clientRoom(room)])).get(clientRoom(room))!;
    expect([await floors('known'), await floors('barrier')]).toEqual([known0 + 1, barrier0]);
    expect(compareIds(floor, before.get(shard)!)).toBeGreaterThanOrEqual(0); // nothing before the join is replayed
    const after = await offsetOf(member, sender, room, 'after');
    expect(compareIds(floor, after.get(shard)!)).toBeLessThan(0); // everything after it is
    // A room nobody on pod 0 is in: subscribed now, so a barrier gives its floor.
    await adapter.whenLive([clientRoom('floor-room-new')]);
    expect(await floors('barrier')).toBe(barrier0 + 1);
    // A second user's connect and join: the namespace room and the room are live, its own user room is new.
    const [known1, barrier1] = [await floors('known'), await floors('barrier')];
    const second = await user('floor-b', 0);
    expect(await second.emitWithAck('join-room', room)).toMatchObject({ ok: true });
    expect(await floors('barrier')).toBe(barrier1 + 1);
    expect(await floors('known')).toBeGreaterThanOrEqual(known1 + 2);
  });

  test('a channel subscribed after entries were published to it takes a barrier, not the older position (a restore would miss them)', async () => {
    type HubInternals = { ref(channel: string): Promise<void>; unref(channel: string): void };
    type Internals = {
      hub: HubInternals;
      whenLive(rooms: string[]): Promise<Map<string, EntryId>>;
      shardOf(room: string): number;
      channelOf(room: string): string;
    };
    const adapter = gws[0].gateway.io.of('/').adapter as unknown as Internals;
    const floors = (how: string) => metricValue(gws[0].metrics, 'realtime_adapter_floors_total', { how });
    // Two rooms of one shard: pod 0 holds a member of the first only.
    const names = Array.from({ length: 400 }, (_, i) => `late-${i}`);
    const shardOf = (r: string) => adapter.shardOf(clientRoom(r));
    const held = names[0];
    const late = names.find((r) => r !== held && shardOf(r) === shardOf(held))!;
    const shard = shardOf(held);
    const local = await user('late-local', 0);
    expect(await local.emitWithAck('join-room', held)).toMatchObject({ ok: true }); // pod 0 has a position on the shard now
    const far = await user('late-far', 1);
    expect(await far.emitWithAck('join-room', late)).toMatchObject({ ok: true });
    const sender = await user('late-sender', 2);
    // Published while pod 0 is not subscribed to the room: it never reaches pod 0, and its id is past pod 0's position.
    const published = await offsetOf(far, sender, late, 'before pod 0 subscribed');
    const channel = adapter.channelOf(clientRoom(late));
    await adapter.hub.ref(channel);
    try {
      const barriers = await floors('barrier');
      const floor = (await adapter.whenLive([clientRoom(late)])).get(clientRoom(late))!;
      expect(compareIds(floor, published.get(shard)!)).toBeGreaterThanOrEqual(0);
      expect(await floors('barrier')).toBe(barriers + 1);
      // Once the position moved past the subscription, the floor is known again.
      await offsetOf(local, sender, held, 'moves pod 0 on');
      const known = await floors('known');
      await adapter.whenLive([clientRoom(late)]);
      expect(await floors('known')).toBe(known + 1);
    } finally {
      adapter.hub.unref(channel);
    }
  });

  test('concurrent barriers on a shard share round trips, and each answer covers what was published before it was asked', async () => {
    type HubInternals = { barrier(shard: number): Promise<EntryId>; sendBarrier(...a: unknown[]): void };
    const adapter = gws[0].gateway.io.of('/').adapter as unknown as { hub: HubInternals; shardOf(room: string): number };
    const hub = adapter.hub;
    const room = 'barrier-room';
    const shard = adapter.shardOf(clientRoom(room));
    const { member, sender } = await memberAndSender('barrier', room);
    const published = await offsetOf(member, sender, room, 'published');
    const send = hub.sendBarrier;
    let sent = 0;
    hub.sendBarrier = function (this: unknown, ...a: unknown[]) {
      sent++;
      send.apply(this, a);
    };
    try {
      const answers = await Promise.all(Array.from({ length: 50 }, () => hub.barrier(shard)));
      expect(sent).toBeGreaterThanOrEqual(1);
      expect(sent).toBeLessThanOrEqual(2); // one on the wire, one for everyone who asked meanwhile
      for (const a of answers) expect(compareIds(a, published.get(shard)!)).toBeGreaterThanOrEqual(0);
    } finally {
      hub.sendBarrier = send;
    }
  });

  test('a room joined before the session is first written stays in the session (a recovery brings it back)', async () => {
    // The session is written once the user's own room is live (a barrier away); a client that joins
    // at once (it does not wait for `session`) gets its join recorded first. Slowed down here.
    type AdapterInternals = { whenLive(rooms: string[], onFloor?: unknown): Promise<unknown> };
    const adapter = gws[0].gateway.io.of('/').adapter as unknown as AdapterInternals;
    const whenLive = adapter.whenLive;
    adapter.whenLive = async function (this: unknown, rooms: string[], onFloor?: unknown) {
      if (rooms.includes('*')) await new Promise((r) => setTimeout(r, 500)); // the session start's (it includes the namespace room, '*')
      return whenLive.call(this, rooms, onFloor);
    };
    try {
      const tok = await token('early');
      const first = client(gws[0].url, { token: tok }, { reconnection: false });
      await waitFor(first, 'connect');
      expect(await first.emitWithAck('join-room', 'early-room')).toMatchObject({ ok: true });
      await waitFor(first, 'session', () => true, 5000);
      const sender = await user('eve', 1);
      const seenFirst = tally(first);
      const warm = await sender.emitWithAck('message', { roomId: 'early-room', text: 'warm' });
      await until(() => seenFirst.get(warm.id) === 1, 5000, 'the first message');
      const pid = (first as unknown as { _pid: string })._pid;
      const offset = (first as unknown as { _lastOffset: string })._lastOffset;
      const firstId = first.id;
      (first.io.engine as unknown as { close(): void }).close();
      const again = await connect(gws[1].url, { token: tok, pid, offset });
      expect(again.id).toBe(firstId);
      const seen = tally(again);
      const m = await sender.emitWithAck('message', { roomId: 'early-room', text: 'after the recovery' });
      await until(() => seen.get(m.id) === 1, 5000, 'the message in the room joined early');
    } finally {
      adapter.whenLive = whenLive;
    }
  });

  test('a live feed cut mid-traffic (its subscriber connections killed) loses nothing acked, and the gap is filled', async () => {
    const rooms = roomsOnDistinctShards(prefix, gws[0].cfg.adapterShards, 4);
    const listener = await user('lena', 2);
    for (const r of rooms) expect(await listener.emitWithAck('join-room', r)).toMatchObject({ ok: true });
    const seen = tally(listener);
    const sender = await user('sid', 0);
    const fillsBefore = await metricValue(gws[2].metrics, 'realtime_adapter_gap_fills_total');
    const ids: string[] = [];
    let sending = true;
    const traffic = (async () => {
      for (let i = 0; sending && i < 400; i++) {
        const ack = await sender.emitWithAck('message', { roomId: rooms[i % rooms.length], text: `t${i}` });
        if (ack.ok) ids.push(ack.id);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await until(() => ids.length >= 40, 10000, 'traffic flowing');
    // Kill gateway 2's subscriber connections (named rtg-shard-<n>) on every node, twice.
    const nodes = kind === 'single' ? [redis!.url] : cluster!.ports.map((p) => `redis://127.0.0.1:${p}`);
    for (let round = 0; round < 2; round++) {
      for (const url of nodes) {
        const r = new Redis(url);
        const list = String(await r.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
        const mine = list.split('\n').filter((l) => / name=rtg-shard-\d+ /.test(l));
        for (const line of mine) {
          const id = /id=(\d+)/.exec(line)?.[1];
          if (id) await r.call('CLIENT', 'KILL', 'ID', id);
        }
        r.disconnect();
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    await until(() => ids.length >= 200, 20000, 'more traffic after the cuts');
    sending = false;
    await traffic;
    await until(() => ids.every((id) => seen.get(id) === 1), 15000, 'every acked message at the listener');
    expect(ids.filter((id) => (seen.get(id) ?? 0) !== 1)).toEqual([]);
    expect(await metricValue(gws[2].metrics, 'realtime_adapter_gap_fills_total')).toBeGreaterThan(fillsBefore);
  });

  test('room traffic spreads over the shards (and, on a cluster, no master takes more than half of it)', async () => {
    const s = new Shards(prefix, gws[0].cfg.adapterShards);
    const perShard = new Array<number>(s.count).fill(0);
    for (let i = 0; i < 2000; i++) perShard[s.of('/', clientRoom(`chat-${i}`))]++;
    expect(Math.max(...perShard) / 2000).toBeLessThan(2.5 / s.count);
    if (kind !== 'cluster') return;
    // Which master owns each shard's slot: the share of rooms per master.
    const r = new Redis(cluster!.url);
    const slots = (await r.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
    r.disconnect();
    const calc = (await import('cluster-key-slot')).default;
    const perMaster = new Map<number, number>();
    for (let shard = 0; shard < s.count; shard++) {
      const slot = calc(s.seq(shard));
      const owner = slots.find(([lo, hi]) => slot >= lo && slot <= hi)![2][1];
      perMaster.set(owner, (perMaster.get(owner) ?? 0) + perShard[shard]);
    }
    const shares = [...perMaster.values()].map((n) => n / 2000);
    console.log(`room share per master: ${shares.map((x) => `${(x * 100).toFixed(1)}%`).join(', ')}`);
    expect(perMaster.size).toBe(3);
    for (const x of shares) expect(x).toBeLessThanOrEqual(0.5);
  });
});
