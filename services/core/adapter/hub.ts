/**
 * The process side of the sharded adapter: one live link per shard, the room channels each
 * namespace adapter needs, the process's position vector, barriers, and gap filling when a link
 * broke. The namespace adapters (sharded-adapter.ts) deliver what it hands them.
 */
import { randomBytes } from 'crypto';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { retryDelay, waitReady, type RedisClient } from '../redis/client';
import { UnavailableError } from '../platform/errors';
import { ShardLink, nodeOptions } from './links';
import { compareIds, formatId, parseId, type EntryId, type Vector } from './offsets';
import type { Shards } from './shards';

/** What a namespace adapter does with the hub's messages. */
export interface HubListener {
  /** A room entry (id `null`: a volatile broadcast) of a room of this namespace, in shard order. */
  live(room: string, shard: number, id: EntryId | null, body: string): void;
  /** A control-plane message on one of this namespace's control channels. */
  control(channel: string, payload: string): void;
}

/** How long a barrier may take before its link is declared broken. */
const BARRIER_TIMEOUT_MS = 5000;
/** A room nobody local is in any more stays subscribed this long (a quick re-join costs nothing). */
const UNSUBSCRIBE_AFTER_MS = 5000;
/** Entries one gap fill delivers at most; beyond, the rooms' local sockets are closed to recover. */
const GAP_FILL_MAX = 20000;
const PAGE = 500;

interface Sub {
  refs: number;
  ready: Promise<void>;
  timer?: NodeJS.Timeout;
}

/** One caller of `barrier`: answered in the tick the answer arrives. */
interface Waiter {
  resolve(id: EntryId): void;
  reject(e: Error): void;
  onAnswer?: (id: EntryId, covers: number) => void;
}

/** One barrier on the wire: every caller that asked before it was sent shares its answer. */
interface Barrier {
  shard: number;
  waiters: Waiter[];
  timer?: NodeJS.Timeout;
  /** The link's connection (generation) it was sent on; -1: sent while the link was down. */
  sentOn: number;
  /** Asked a second time already (a barrier is sent at most twice). */
  resent: boolean;
  /** The shard's subscription tick when it was last sent: its answer covers the subscriptions up to it. */
  sentTick: number;
}

interface Gap {
  /** Live messages held while the gap is filled (delivered after it, those past the fill). */
  held: Array<{ channel: string; payload: string }>;
  filling?: boolean;
  /** How often the link went down since the gap began: a fill during which it dropped again is not enough. */
  drops: number;
}

export class Hub {
  readonly processId = randomBytes(8).toString('hex');
  /** Position vector: the last entry id delivered from each shard. */
  readonly vector: Vector = new Map();
  private links: ShardLink[] = [];
  private subs = new Map<string, Sub>();
  private listeners = new Map<string, HubListener>();
  private barriers = new Map<string, Barrier>();
  /**
   * Whether the pod's position covers a channel's subscription. Entries published to a channel
   * before its subscription took effect never arrived here, and their ids can lie past the
   * position. Each subscription that takes effect gets the shard's next tick; the position covers
   * it once it was moved by an entry received live after it, or by a barrier sent after it (both
   * have later ids than anything published before the subscription). Until then the channel's
   * floor is not known without a barrier.
   */
  private subscribedAt = new Map<string, number>();
  private ticks: number[] = [];
  private covered: number[] = [];
  /** Per shard: is a barrier on the wire, and who asked since it was sent (they get the next one). */
  private inFlight = new Set<number>();
  private queued = new Map<number, Waiter[]>();
  private gaps = new Map<number, Gap>();
  private started = false;
  private stopped = false;

  constructor(
    readonly shards: Shards,
    private redis: RedisClient,
    private url: string,
    private logger: Logger,
    private metrics: Metrics,
    private onGapOverflow: (rooms: Array<{ nsp: string; room: string }>) => void,
  ) {}

  /** Opens the links (lazily, on the first namespace). */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (let s = 0; s < this.shards.count; s++) {
      this.ticks.push(0);
      this.covered.push(0);
      const link = new ShardLink(
        s,
        () => nodeOptions(this.url, this.redis, this.shards.seq(s)),
        {
          message: (c, p) => this.onMessage(s, c, p),
          down: () => this.onDown(s),
          up: () => void this.onUp(s),
          subscribed: (c) => this.subscribedAt.set(c, ++this.ticks[s]),
        },
        this.logger,
        `shard-${s}`,
      );
      this.links.push(link);
      link.start();
      void link.subscribe([this.shards.barrierChannel(s, this.processId)]);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const l of this.links) l.stop();
    const closed = new Error('adapter closed');
    for (const b of this.barriers.values()) {
      clearTimeout(b.timer);
      for (const w of b.waiters) w.reject(closed);
    }
    for (const q of this.queued.values()) for (const w of q) w.reject(closed);
    this.barriers.clear();
    this.queued.clear();
  }

  listen(nsp: string, l: HubListener): void {
    this.listeners.set(nsp, l);
  }

  unlisten(nsp: string): void {
    this.listeners.delete(nsp);
  }

  /** Resolves once every link is up (bounded): a process starts serving with its live feed in place. */
  async whenUp(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.links.every((l) => l.isUp)) {
      if (Date.now() > end) throw new Error(`the live feed is not up after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** True while every link is up (no gap being filled). */
  healthy(): boolean {
    return this.started && this.links.every((l) => l.isUp) && this.gaps.size === 0;
  }

  /** Subscribes a channel (counted); resolves once live (`unavailable` when its link stays down). */
  ref(channel: string): Promise<void> {
    let sub = this.subs.get(channel);
    if (sub) {
      sub.refs++;
      clearTimeout(sub.timer);
      sub.timer = undefined;
      return sub.ready;
    }
    const shard = this.shards.ofName(channel);
    sub = { refs: 1, ready: this.links[shard].subscribe([channel]) };
    sub.ready.catch(() => undefined);
    this.subs.set(channel, sub);
    return sub.ready;
  }

  /** Drops one reference; the channel is unsubscribed a little later if nobody took it again. */
  unref(channel: string): void {
    const sub = this.subs.get(channel);
    if (!sub || --sub.refs > 0) return;
    sub.timer = setTimeout(() => {
      if (sub.refs > 0 || this.subs.get(channel) !== sub) return;
      this.subs.delete(channel);
      this.subscribedAt.delete(channel);
      this.links[this.shards.ofName(channel)].unsubscribe([channel]);
    }, UNSUBSCRIBE_AFTER_MS).unref();
  }

  /**
   * The position from which `channels` (all of shard `shard`) reach this process's sockets, when
   * it is known without Redis: every channel subscribed on the link's live connection, no gap
   * being filled, the shard has a position, and that position moved since each channel's
   * subscription took effect (`covered`). Read in the tick a socket joins (or a restore
   * starts buffering), it is exact: every entry delivered from then on comes after it, and none
   * before it was for that socket. `undefined`: ask a barrier (`floorBarrier`).
   */
  knownFloor(shard: number, channels: readonly string[]): EntryId | undefined {
    const link = this.links[shard];
    const at = this.vector.get(shard);
    if (!at || !link?.isUp || this.gaps.has(shard)) return undefined;
    if (!channels.every((c) => link.isActive(c) && (this.subscribedAt.get(c) ?? Infinity) <= this.covered[shard])) return undefined;
    this.metrics.adapterFloors.inc({ how: 'known' });
    return at;
  }

  /** A floor that is not known (`knownFloor`): a barrier, counted. */
  floorBarrier(shard: number, onAnswer?: (id: EntryId) => void): Promise<EntryId> {
    this.metrics.adapterFloors.inc({ how: 'barrier' });
    return this.barrier(shard, onAnswer);
  }

  /**
   * The shard's position once everything published to it so far reached this process.
   * `onAnswer` runs in the very tick the answer arrives, before any message behind it on the link
   * (a promise's continuation would run only after the rest of that network read). Callers share
   * barriers: one is on the wire per shard at a time, and whoever asks meanwhile gets the next one
   * (sent once it is answered, so after they asked): a restore storm costs a barrier per shard
   * and round trip, not one per restore.
   */
  barrier(shard: number, onAnswer?: (id: EntryId, covers: number) => void): Promise<EntryId> {
    return new Promise<EntryId>((resolve, reject) => {
      const q = this.queued.get(shard);
      if (q) q.push({ resolve, reject, onAnswer });
      else this.queued.set(shard, [{ resolve, reject, onAnswer }]);
      if (!this.inFlight.has(shard)) this.launch(shard);
    });
  }

  /** Sends one barrier for everyone queued on `shard`. */
  private launch(shard: number): void {
    const waiters = this.queued.get(shard);
    if (!waiters?.length) return;
    this.queued.delete(shard);
    this.inFlight.add(shard);
    const token = randomBytes(6).toString('hex');
    const link = this.links[shard];
    const entry: Barrier = { shard, waiters, sentOn: -1, resent: false, sentTick: 0 };
    // A barrier sent while the link was down, or on a connection that has gone since, is sent
    // again when the link comes up (resendBarriers). Silent on the connection it was sent on:
    // that connection is stuck, restart it.
    entry.timer = setTimeout(() => {
      this.settle(token, entry, new UnavailableError(`the live feed of shard ${shard} did not answer; retry later`));
      if (link.isUp && link.generation === entry.sentOn) link.restart();
    }, BARRIER_TIMEOUT_MS).unref();
    this.barriers.set(token, entry);
    this.sendBarrier(token, entry);
  }

  /** A barrier is done (answered, failed or timed out): its waiters learn it, the next one goes. */
  private settle(token: string, b: Barrier, outcome: EntryId | Error): void {
    if (this.barriers.get(token) !== b) return;
    clearTimeout(b.timer);
    this.barriers.delete(token);
    this.inFlight.delete(b.shard);
    if (outcome instanceof Error) for (const w of b.waiters) w.reject(outcome);
    else {
      for (const w of b.waiters) w.onAnswer?.(outcome, b.sentTick);
      for (const w of b.waiters) w.resolve(outcome);
    }
    if (!this.stopped) this.launch(b.shard);
  }

  private sendBarrier(token: string, b: Barrier): void {
    const link = this.links[b.shard];
    b.sentOn = link.isUp ? link.generation : -1;
    b.sentTick = this.ticks[b.shard];
    this.redis
      .shardBarrier(this.shards.seq(b.shard), this.shards.barrierChannel(b.shard, this.processId), token)
      .catch((e: Error) => this.settle(token, b, e));
  }

  /** The link of `shard` is up on a new connection: barriers sent before it cannot be answered any more; ask again. */
  private resendBarriers(shard: number): void {
    const link = this.links[shard];
    for (const [token, b] of this.barriers) {
      if (b.shard !== shard || b.sentOn === link.generation || b.resent) continue;
      b.resent = true;
      this.sendBarrier(token, b);
    }
  }

  /**
   * The shard's position moves to `id` (an entry delivered, a barrier answered, a gap filled).
   * `covers`: the shard's tick when what moved it was sent (a barrier) or received (a live entry):
   * the subscriptions up to it are covered by the position now. Undefined for entries read from a
   * history, which say nothing about subscriptions.
   */
  private advance(shard: number, id: EntryId, covers?: number): void {
    const cur = this.vector.get(shard);
    if (!cur || compareIds(id, cur) > 0) this.vector.set(shard, id);
    if (covers !== undefined && covers > this.covered[shard]) this.covered[shard] = covers;
  }

  private onMessage(shard: number, channel: string, payload: string): void {
    if (channel === this.shards.barrierChannel(shard, this.processId)) {
      const nl = payload.indexOf('\n');
      return this.onBarrier(shard, payload.slice(0, nl), payload.slice(nl + 1));
    }
    const gap = this.gaps.get(shard);
    if (gap) {
      gap.held.push({ channel, payload });
      return;
    }
    this.dispatch(shard, channel, payload, true);
  }

  /** Delivers one entry to its namespace; `live`: received on the link just now (not held, not read from a history). */
  private dispatch(shard: number, channel: string, payload: string, live = false): void {
    const nl = payload.indexOf('\n');
    const head = payload.slice(0, nl);
    const room = this.shards.parseChannel(channel);
    if (room) {
      const id = head ? parseId(head) : null;
      if (head && !id) return;
      if (id) {
        const cur = this.vector.get(shard);
        if (cur && compareIds(id, cur) <= 0) return; // delivered already (a gap fill overlapped it)
        this.advance(shard, id, live ? this.ticks[shard] : undefined);
        this.metrics.adapterReadLag.observe(Math.max(0, Date.now() - id.ms) / 1000);
      }
      this.listeners.get(room.nsp)?.live(room.room, shard, id, payload.slice(nl + 1));
      return;
    }
    const nsp = controlNamespace(channel);
    if (nsp !== null) this.listeners.get(nsp)?.control(channel, payload);
  }

  private onBarrier(shard: number, token: string, last: string): void {
    const b = this.barriers.get(token);
    const id = parseId(last);
    if (!b || !id) return;
    // While a gap is filled the position stays where the gap began (onUp moves it).
    if (!this.gaps.has(shard)) this.advance(shard, id, b.sentTick);
    this.settle(token, b, id);
  }

  /** The link broke: hold what arrives until the gap is filled (`onUp`). */
  private onDown(shard: number): void {
    const gap = this.gaps.get(shard);
    if (gap) gap.drops++;
    else this.gaps.set(shard, { held: [], drops: 0 });
    this.metrics.redisErrors.inc({ op: 'adapter_link' });
    this.logger.debug({ shard, at: this.vector.get(shard) }, 'live feed of a shard down; holding it until the gap is filled');
  }

  /**
   * The link is back: every room of the shard subscribed here is read from the position to the
   * shard's current end (a barrier), merged in id order and delivered, then the messages held
   * meanwhile (past the fill). Too much to fill: the rooms' local sockets are closed instead, and
   * recover from their own offsets. A fill that fails (Redis not ready yet) is retried while the
   * link stays up; the messages stay held until it succeeds.
   */
  private async onUp(shard: number): Promise<void> {
    this.resendBarriers(shard);
    const gap = this.gaps.get(shard);
    if (!gap || gap.filling) return;
    gap.filling = true;
    // One loop per gap, until it is filled: a link that drops again meanwhile is waited for.
    for (let attempt = 1; this.gaps.get(shard) === gap && !this.stopped; attempt++) {
      if (!this.links[shard].isUp) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      try {
        if (this.redis.status !== 'ready') await waitReady(this.redis, 10000);
        const drops = gap.drops;
        await this.fill(shard);
        // The link dropped again during the fill: what was published while it was down is past the
        // fill's end and never arrived live. Fill again, from where this one ended.
        if (gap.drops !== drops) continue;
        this.gaps.delete(shard);
        for (const h of gap.held) this.dispatch(shard, h.channel, h.payload);
        return;
      } catch (e) {
        this.logger.debug({ shard, err: (e as Error).message }, 'filling a gap of the live feed failed; retrying');
        await new Promise((r) => setTimeout(r, retryDelay(Math.min(attempt, 6))));
      }
    }
  }

  private async fill(shard: number): Promise<void> {
    const rooms = [...this.subs.keys()]
      .map((c) => this.shards.parseChannel(c))
      .filter((r): r is NonNullable<typeof r> => r?.shard === shard);
    const since = this.vector.get(shard);
    let covers: number | undefined;
    const upTo = await this.barrier(shard, (_id, t) => (covers = t));
    const entries = since ? await this.readGap(rooms, since, upTo) : [];
    if (entries === null) this.onGapOverflow(rooms);
    else for (const e of entries) this.dispatch(shard, e.channel, e.payload);
    this.advance(shard, upTo, covers);
    this.metrics.adapterGapFills.inc();
    this.logger.info(
      { shard, rooms: rooms.length, filled: entries?.length ?? 'overflow', since, upTo, held: this.gaps.get(shard)?.held.length },
      'gap of a live feed filled',
    );
  }

  private async readGap(rooms: Array<{ nsp: string; room: string; shard: number }>, since: EntryId, upTo: EntryId) {
    const out: Array<{ id: EntryId; channel: string; payload: string }> = [];
    for (const r of rooms) {
      let from = since;
      for (;;) {
        const [, page] = await this.redis.roomRead(this.shards.stream(r.shard, r.nsp, r.room), formatId(from), formatId(upTo), PAGE);
        for (const [idText, fields] of page) {
          const id = parseId(idText)!;
          out.push({ id, channel: this.shards.channel(r.shard, r.nsp, r.room), payload: `${idText}\n${fields[fields.indexOf('m') + 1]}` });
          from = id;
        }
        if (out.length > GAP_FILL_MAX) return null;
        if (page.length < PAGE) break;
      }
    }
    return out.sort((a, b) => compareIds(a.id, b.id));
  }
}

/** Control channels: `{<tag>}:ctl:<nsp>` (public) and `{<tag>}:ctl:<nsp>#<uid>` (one process's responses). */
export function controlNamespace(channel: string): string | null {
  const at = channel.indexOf('}:ctl:');
  if (!channel.startsWith('{') || at < 0) return null;
  const rest = channel.slice(at + 6);
  const hash = rest.indexOf('#');
  return hash < 0 ? rest : rest.slice(0, hash);
}
