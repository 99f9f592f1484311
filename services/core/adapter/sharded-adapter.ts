/**
 * The Socket.IO adapter of the clustered engine (one per namespace). Broadcasts go to their rooms'
 * shards (room-publish-3.lua: history stream + live channel in one step); a pod receives a room's
 * live messages only while it has a member of the room (it subscribes the room's channel on the
 * first local join and drops it after the last leave), so a message costs the pods that deliver
 * it and nobody else. What is not a broadcast (broadcasts with acks, fetchSockets, serverSideEmit,
 * socketsJoin, disconnectSockets) is socket.io-adapter's ClusterAdapter over a per-namespace
 * control channel. Every packet a socket gets carries the pod's position vector (offsets.ts);
 * restores read exactly the rooms of the session (sessions.ts).
 */
import type { Namespace, Socket } from 'socket.io';
import { ClusterAdapter, type ClusterMessage, type ClusterResponse } from 'socket.io-adapter';
import { decode, encode } from '@msgpack/msgpack';
import { UnavailableError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import { contextFrom, inSpan, SpanKind, traceparentOf } from '../platform/telemetry';
import type { RedisClient } from '../redis/client';
import { markFailed, observeLatency, originOf } from './broadcast';
import type { Hub, HubListener } from './hub';
import { clientForSlot } from './links';
import { compareIds, encodeVector, type EntryId } from './offsets';
import { NSP_ROOM } from './shards';
import { bodyData, encodeBody, eventFrame, parseBody, preEncodeFrame } from './wire';

type Room = string;
type SocketId = string;
interface BroadcastOptions {
  rooms: Set<Room>;
  except?: Set<Room>;
  flags?: { volatile?: boolean; local?: boolean; compress?: boolean; timeout?: number };
}
type Packet = { type: number; data: unknown[]; nsp?: string; id?: number };

/** How long what a restore replayed is remembered against a gap fill delivering it again (the recovery window). */
const REPLAYED_TTL_MS = 120000;

/** How long a join may wait for its room's live feed (a link reconnecting after a Redis restart). */
const LIVE_WITHIN_MS = 5000;

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new UnavailableError(message)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Hands encoded packets to a socket's connection (what Socket.IO's own adapter does per recipient). */
function write(socket: Socket, encoded: unknown[], opts: object): void {
  (socket.client as unknown as { writeToEngine(p: unknown[], o: object): void }).writeToEngine(encoded, opts);
}

export interface ShardedAdapterOptions {
  hub: Hub;
  redis: RedisClient;
  metrics: Metrics;
  /** History kept per room (approximate MAXLEN). */
  roomMaxLen: number;
  /** How long a quiet room's history lives (ms): the recovery window and a margin. */
  historyTtlMs: number;
  /** Whether this namespace answers cluster requests (a worker's workspace namespaces do not). */
  control: boolean;
}

/** A restore in flight: live entries for its rooms past the restore's read end wait here for the socket. */
export interface RestoreBuffer {
  rooms: Set<Room>;
  /** Per shard, the id the restore read up to (live entries after it are kept). */
  readTo: Map<number, EntryId>;
  frames: Array<{ encoded: unknown[]; opts: object }>;
}

export class ShardedAdapter extends ClusterAdapter implements HubListener {
  private hub: Hub;
  private publicChannel: string;
  private readonly sockets_: Map<SocketId, Socket>;
  /** Restores in flight on this pod (see RestoreBuffer). */
  readonly restoring = new Set<RestoreBuffer>();
  /**
   * What the restores of recent recoveries here replayed, per socket and shard (their read ends),
   * in insertion order. A gap fill of a live feed that broke during a restore (a Redis restart, a
   * link cut) delivers the gap to every member afterwards; the restored socket got those entries
   * in its missed packets already and must not get them twice. An entry goes once a later entry
   * of that shard reached the socket, or after REPLAYED_TTL_MS.
   */
  private readonly replayedTo = new Map<SocketId, { at: number; shards: Map<number, EntryId> }>();

  constructor(
    nsp: Namespace,
    private o: ShardedAdapterOptions,
  ) {
    super(nsp);
    this.hub = o.hub;
    this.sockets_ = nsp.sockets;
    const shard = this.hub.shards.of(nsp.name, '#ctl');
    this.publicChannel = `{${this.hub.shards.tags[shard]}}:ctl:${nsp.name}`;
    this.hub.start();
    this.hub.listen(nsp.name, this);
    if (o.control) {
      void this.hub.ref(this.publicChannel);
      void this.hub.ref(this.privateChannel(this.uid));
    }
    this.on('create-room', (room: Room) => this.onCreateRoom(room));
    this.on('delete-room', (room: Room) => this.onDeleteRoom(room));
  }

  private privateChannel(uid: string): string {
    return `${this.publicChannel}#${uid}`;
  }

  /** The live channel of a room of this namespace. */
  channelOf(room: Room): string {
    const s = this.hub.shards;
    return s.channel(s.of(this.nsp.name, room), this.nsp.name, room);
  }

  /** True for a socket's own room (never shared, never subscribed). */
  private isSocketRoom(room: Room): boolean {
    return this.sids.has(room) && this.sids.get(room)!.has(room);
  }

  private onCreateRoom(room: Room): void {
    // A socket's own room is created first in its addAll: each local socket holds the namespace-wide room.
    if (this.sids.has(room)) void this.hub.ref(this.channelOf(NSP_ROOM));
    else void this.hub.ref(this.channelOf(room));
  }

  private onDeleteRoom(room: Room): void {
    // A socket's own room goes in its delAll, while the socket is still in `sids`.
    if (this.sids.has(room)) this.hub.unref(this.channelOf(NSP_ROOM));
    else this.hub.unref(this.channelOf(room));
  }

  /**
   * Resolves once this pod receives the rooms' live messages, with each room's floor: the shard
   * position from which its entries reach local sockets (a recovery of a socket that joined now
   * never replays what came before it).
   */
  async whenLive(rooms: Room[], onFloor?: (shard: number, id: EntryId) => void): Promise<Map<Room, EntryId>> {
    const shards = this.hub.shards;
    const where = rooms.map((r) => {
      const shard = shards.of(this.nsp.name, r);
      return { room: r, shard, channel: shards.channel(shard, this.nsp.name, r) };
    });
    const byShard = new Map<number, string[]>();
    for (const w of where) {
      const channels = byShard.get(w.shard);
      if (channels) channels.push(w.channel);
      else byShard.set(w.shard, [w.channel]);
    }
    // Callers join (or start buffering) in this very tick: a shard whose channels are live already
    // has its floor here, without Redis. Only a channel subscribed just now needs a barrier.
    const floors = new Map<number, EntryId>();
    for (const [s, channels] of byShard) {
      const at = this.hub.knownFloor(s, channels);
      if (!at) continue;
      floors.set(s, at);
      onFloor?.(s, at);
    }
    const subscribed = Promise.all(where.map((w) => this.hub.ref(w.channel).finally(() => this.hub.unref(w.channel))));
    await withTimeout(subscribed, LIVE_WITHIN_MS, 'the live feed of a room is not up; retry later');
    // Each answer is taken in the tick it arrives: a live entry right behind it must already see it.
    await Promise.all(
      [...byShard.keys()]
        .filter((s) => !floors.has(s))
        .map((s) =>
          this.hub.floorBarrier(s, (id) => {
            floors.set(s, id);
            onFloor?.(s, id);
          }),
        ),
    );
    return new Map(where.map((w) => [w.room, floors.get(w.shard)!]));
  }

  shardCount(): number {
    return this.hub.shards.count;
  }

  shardOf(room: Room): number {
    return this.hub.shards.of(this.nsp.name, room);
  }

  /** The history stream of a room of this namespace. */
  streamOf(room: Room): string {
    return this.hub.shards.stream(this.shardOf(room), this.nsp.name, room);
  }

  override broadcast(packet: Packet, opts: BroadcastOptions): Promise<void> {
    const rooms = [...opts.rooms];
    const local = rooms.filter((r) => this.isSocketRoom(r));
    if (opts.flags?.local || (rooms.length > 0 && local.length === rooms.length)) {
      this.deliverLocal(packet, opts);
      return Promise.resolve();
    }
    return this.publishRooms(packet, rooms.length ? rooms : [NSP_ROOM], opts);
  }

  /** One entry per target room, each excluding the rooms before it: every recipient gets the packet once. */
  private async publishRooms(packet: Packet, rooms: Room[], opts: BroadcastOptions): Promise<void> {
    const origin = originOf(packet);
    const tp = traceparentOf();
    const except = [...(opts.except ?? [])];
    const store = opts.flags?.volatile ? '0' : '1';
    const shards = this.hub.shards;
    try {
      await Promise.all(
        rooms.map((room, i) => {
          const body = encodeBody(packet.data, {
            ts: origin?.ts,
            kind: origin?.kind,
            tp,
            except: i ? [...except, ...rooms.slice(0, i)] : except,
          });
          const s = shards.of(this.nsp.name, room);
          const stream = shards.stream(s, this.nsp.name, room);
          return this.o.redis.roomPublish(
            shards.seq(s),
            stream,
            stream,
            this.channelOf(room),
            this.o.roomMaxLen,
            this.o.historyTtlMs,
            body,
            store,
            '',
          );
        }),
      );
    } catch {
      this.o.metrics.redisErrors.inc({ op: 'adapter_publish' });
      markFailed(packet);
    }
  }

  /** Delivers to local sockets only (a socket's own room, or `local` broadcasts), with the pod's offset. */
  private deliverLocal(packet: Packet, opts: BroadcastOptions): void {
    const withOffset = packet.type === 2 && packet.id === undefined && !opts.flags?.volatile;
    if (withOffset) packet.data.push(encodeVector(this.hub.vector));
    packet.nsp = this.nsp.name;
    const packetOpts = { preEncoded: true, volatile: opts.flags?.volatile, compress: opts.flags?.compress };
    const encoded = (this as unknown as { _encode(p: Packet, o: object): unknown[] })._encode(packet, packetOpts);
    this.forEachRecipient(opts.rooms, opts.except, (socket) => write(socket, encoded, packetOpts));
  }

  /** A socket was restored here from its rooms' histories up to `readTo` (per shard): a gap fill must not deliver those entries to it again. */
  restored(sid: SocketId, readTo: ReadonlyMap<number, EntryId>): void {
    const now = Date.now();
    for (const [k, v] of this.replayedTo) {
      if (now - v.at <= REPLAYED_TTL_MS) break;
      this.replayedTo.delete(k);
    }
    this.replayedTo.delete(sid);
    if (readTo.size) this.replayedTo.set(sid, { at: now, shards: new Map(readTo) });
  }

  /** A live entry of one of this namespace's rooms (the hub calls it in shard order). */
  live(room: Room, shard: number, id: EntryId | null, text: string): void {
    const body = parseBody(text);
    if (!body) return;
    this.o.metrics.pending.adapterReceived++;
    const members = room === NSP_ROOM ? this.sids : this.rooms.get(room);
    if (!members?.size && !this.restoring.size) {
      this.o.metrics.pending.adapterSkipped++;
      return;
    }
    const run = () => this.deliverEntry(room, shard, id, body);
    if (body.tp)
      void inSpan(
        'adapter emit',
        {
          kind: SpanKind.CONSUMER,
          parent: contextFrom(body.tp),
          attributes: { 'messaging.system': 'redis', 'socket.io.namespace': this.nsp.name },
        },
        async () => run(),
      );
    else run();
  }

  private deliverEntry(room: Room, shard: number, id: EntryId | null, body: ReturnType<typeof parseBody> & object): void {
    const offset = id ? encodeVector(this.hub.vector) : undefined;
    const packetOpts: { preEncoded: true; volatile: boolean; wsPreEncodedFrame?: unknown } = { preEncoded: true, volatile: id === null };
    let encoded: unknown[];
    if (body.enc === 'j') {
      encoded = [eventFrame(this.nsp.name, body.payload, offset)];
      preEncodeFrame(encoded, packetOpts);
    } else {
      const data = bodyData(body);
      if (offset !== undefined) data.push(offset);
      encoded = (this as unknown as { _encode(p: Packet, o: object): unknown[] })._encode(
        { type: 2, data, nsp: this.nsp.name },
        packetOpts,
      );
    }
    const except = body.except.length ? new Set(body.except) : undefined;
    const target = room === NSP_ROOM ? new Set<Room>() : new Set([room]);
    const replayed = id && this.replayedTo.size ? this.replayedTo : undefined;
    let n = 0;
    this.forEachRecipient(target, except, (socket) => {
      if (replayed) {
        const r = replayed.get(socket.id);
        const to = r?.shards.get(shard);
        if (to) {
          if (compareIds(id!, to) <= 0) return; // its restore replayed it
          r!.shards.delete(shard);
        }
      }
      n++;
      write(socket, encoded, packetOpts);
    });
    if (this.restoring.size && id) this.keepForRestores(room, shard, id, encoded, packetOpts);
    if (!n) this.o.metrics.pending.adapterSkipped++;
    else if (body.ts) observeLatency(this.nsp.server, body.kind || 'room', body.ts);
  }

  private keepForRestores(room: Room, shard: number, id: EntryId, encoded: unknown[], opts: object): void {
    for (const r of this.restoring) {
      const to = r.readTo.get(shard);
      if (!to || !(room === NSP_ROOM || r.rooms.has(room))) continue;
      if (id.ms > to.ms || (id.ms === to.ms && id.seq > to.seq)) r.frames.push({ encoded, opts });
    }
  }

  /**
   * The sockets a broadcast reaches: members of `rooms` (all sockets of the namespace when empty)
   * not in `except`, including recovered sockets still in their handshake (their client buffers
   * what arrives until its CONNECT; a broadcast in between would be lost otherwise).
   */
  forEachRecipient(rooms: Set<Room>, except: Set<Room> | undefined, cb: (socket: Socket) => void): void {
    const pre = (this.nsp as unknown as { _preConnectSockets?: Map<SocketId, Socket> })._preConnectSockets;
    const excluded = new Set<SocketId>();
    for (const r of except ?? []) for (const sid of this.rooms.get(r) ?? []) excluded.add(sid);
    const visit = (sid: SocketId) => {
      if (excluded.has(sid)) return;
      const socket = this.sockets_.get(sid) ?? pre?.get(sid);
      if (socket && (socket.connected || socket.recovered)) cb(socket);
    };
    if (!rooms.size) {
      for (const sid of this.sids.keys()) visit(sid);
      return;
    }
    const seen = rooms.size > 1 ? new Set<SocketId>() : undefined;
    for (const r of rooms) {
      for (const sid of this.rooms.get(r) ?? []) {
        if (seen) {
          if (seen.has(sid)) continue;
          seen.add(sid);
        }
        visit(sid);
      }
    }
  }

  // --- the control plane (ClusterAdapter) ---

  protected override doPublish(message: ClusterMessage): Promise<string> {
    return this.send(this.publicChannel, message).then(() => '');
  }

  protected override doPublishResponse(requesterUid: string, response: ClusterResponse): Promise<void> {
    return this.send(this.privateChannel(requesterUid), response);
  }

  private async send(channel: string, message: unknown): Promise<void> {
    await this.o.redis.spublish(channel, Buffer.from(encode(message)).toString('base64'));
  }

  control(channel: string, payload: string): void {
    let message: ClusterMessage & ClusterResponse;
    try {
      message = decode(Buffer.from(payload, 'base64')) as ClusterMessage & ClusterResponse;
    } catch {
      return;
    }
    if (channel === this.publicChannel) this.onMessage(message);
    else this.onResponse(message);
  }

  override async serverCount(): Promise<number> {
    const r = (await clientForSlot(this.o.redis, this.publicChannel)
      .call('PUBSUB', 'SHARDNUMSUB', this.publicChannel)
      .catch(() => null)) as [string, number] | null;
    return Math.max(1, Number(r?.[1] ?? 1));
  }

  override close(): void {
    this.hub.unlisten(this.nsp.name);
    if (this.o.control) {
      this.hub.unref(this.publicChannel);
      this.hub.unref(this.privateChannel(this.uid));
    }
  }
}

// Socket.IO calls apply() for fetchSockets, disconnectSockets, socketsJoin/Leave and broadcasts with
// acks: the same recipients as broadcasts.
(ShardedAdapter.prototype as unknown as { apply: unknown }).apply = function (
  this: ShardedAdapter,
  opts: BroadcastOptions,
  cb: (s: Socket) => void,
) {
  this.forEachRecipient(opts.rooms, opts.except, cb);
};
