/**
 * Chat-shaped room traffic for the scale-out benchmarks (scaleout, tax, cluster-spread): R rooms
 * of M members, every member a raw websocket client (its own user) on the server the layout
 * names, messages sent by the rooms' own members at a fixed offered rate, and every delivery
 * recorded (lost, duplicated, latency). The same clients, rooms and schedule for the gateway and
 * for bare Socket.IO.
 */
import { performance } from 'perf_hooks';
import { sleep } from './proc';
import { stats, type Stats } from './report';
import { connectMany, SioClient } from './sio-client';
import type { Cluster } from './targets';

export interface RoomLayout {
  rooms: number;
  members: number;
  /** Room names are `<prefix><index>`. */
  prefix: string;
  /** The server (index into cluster.servers) of member k of room r. */
  serverOf(room: number, member: number): number;
}

/**
 * Room r's members on two servers of `pods`: the first half on pods[r mod N], the second half on
 * pods[(r + 1) mod N] (all on one with a single pod): each room spans at most 2 pods, and every
 * pod holds the same number of members.
 */
export function twoPodLayout(rooms: number, members: number, pods: number[], prefix: string): RoomLayout {
  const n = pods.length;
  return {
    rooms,
    members,
    prefix,
    serverOf: (r, k) => pods[(r + (k < members / 2 ? 0 : 1)) % n],
  };
}

/** What one phase of paced traffic measured. */
export interface LoadNumbers {
  tag: string;
  /** Messages sent, acked ok, and answered otherwise (or not at all). */
  sent: number;
  acked: number;
  ackErrors: number;
  ackErrorSamples: unknown[];
  /** acked x members: every member (the sender too) gets each message. */
  expected: number;
  unique: number;
  lost: number;
  duplicates: number;
  offeredRate: number;
  /** Messages acked per second of the send phase. */
  achievedRate: number;
  /** From the first send to the last ack. */
  sendSeconds: number;
  /** From the first send to the end of the drain: the window CPU is measured over. */
  windowSeconds: number;
  /** Sends that went out more than 50 ms behind their schedule (the sender could not keep up). */
  lateSends: number;
  /** Clients whose connection had closed by the end of the phase (since the set-up; none should). */
  closedClients: number;
  latencyMs: Stats;
  ackRttMs: Stats;
}

const RE = /"b":"(\w+)","s":(\d+),"t":([\d.]+)/;

/** Deliveries of one phase. */
class Recorder {
  /** Bit k: member k of the message's room got it. */
  readonly got: Uint8Array;
  readonly roomOf: Int32Array;
  readonly lat: Float64Array;
  nLat = 0;
  unique = 0;
  duplicates = 0;
  foreign = 0;
  lastRecv = 0;
  constructor(
    readonly tag: string,
    readonly messages: number,
    members: number,
  ) {
    this.got = new Uint8Array(messages);
    this.roomOf = new Int32Array(messages).fill(-1);
    this.lat = new Float64Array(messages * members);
  }
  record(room: number, member: number, seq: number, sentAt: number, now: number): void {
    if (seq >= this.messages) return;
    if (this.roomOf[seq] !== room) {
      this.foreign++;
      return;
    }
    const bit = 1 << member;
    if (this.got[seq] & bit) {
      this.duplicates++;
      return;
    }
    this.got[seq] |= bit;
    this.unique++;
    this.lat[this.nLat++] = now - sentAt;
    this.lastRecv = now;
  }
}

export class RoomLoad {
  private recorder?: Recorder;
  private warm?: { tag: string; got: number };
  /** Packets other than this load's messages (announcements, joins), by event name. */
  readonly others: Record<string, number> = {};
  lastEventAt = 0;
  /** Clients whose connection closed (the benchmark never closes one before `close()`). */
  closedClients = 0;
  private closing = false;

  private constructor(
    readonly layout: RoomLayout,
    readonly clients: SioClient[],
  ) {}

  roomName(r: number): string {
    return `${this.layout.prefix}${r}`;
  }

  /**
   * Connects every member to its server (at most `concurrency` handshakes in flight), joins it to
   * its room, and waits until the join announcements have settled.
   */
  static async setup(
    cluster: Cluster,
    layout: RoomLayout,
    opts: { userPrefix: string; concurrency?: number; log?: (m: string) => void; signal?: AbortSignal },
  ): Promise<RoomLoad> {
    const M = layout.members;
    if (M > 8) throw new Error('at most 8 members per room');
    const n = layout.rooms * M;
    const holder: { load?: RoomLoad } = {};
    const t0 = performance.now();
    const clients = await connectMany(n, opts.concurrency ?? 50, async (i) => {
      const r = Math.floor(i / M);
      const k = i % M;
      const server = cluster.servers[layout.serverOf(r, k)];
      return SioClient.connect(server.url, {
        auth: await cluster.auth(`${opts.userPrefix}${i}`),
        timeoutMs: 30000,
        onEvent: (raw) => holder.load?.onEvent(r, k, raw),
      });
    });
    const load = new RoomLoad(layout, clients);
    holder.load = load;
    for (const c of clients)
      c.onClose = () => {
        if (!load.closing) load.closedClients++;
      };
    opts.log?.(`room load: ${n} clients connected in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (opts.signal?.aborted) throw new Error('aborted');
    const t1 = performance.now();
    let next = 0;
    let failed: string | undefined;
    await Promise.all(
      Array.from({ length: Math.min(opts.concurrency ?? 50, n) }, async () => {
        while (next < n && !failed) {
          const i = next++;
          const ans = (await clients[i].emitWithAck('join-room', load.roomName(Math.floor(i / M)))) as { ok?: boolean };
          if (!ans?.ok) failed = `client ${i}: join-room answered ${JSON.stringify(ans)}`;
        }
      }),
    );
    if (failed) {
      for (const c of clients) c.terminate();
      throw new Error(failed);
    }
    opts.log?.(`room load: ${n} joins in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    await load.quiet(500, 20000);
    return load;
  }

  private onEvent(room: number, member: number, raw: string): void {
    const now = performance.now();
    this.lastEventAt = now;
    const m = raw.startsWith('42["message"') ? RE.exec(raw) : null;
    if (m) {
      if (this.recorder && m[1] === this.recorder.tag) return this.recorder.record(room, member, Number(m[2]), Number(m[3]), now);
      if (this.warm && m[1] === this.warm.tag) {
        this.warm.got++;
        return;
      }
    }
    const name = /^42\["([^"]{0,40})"/.exec(raw)?.[1] ?? raw.slice(0, 12);
    this.others[name] = (this.others[name] ?? 0) + 1;
  }

  /** Waits until no packet arrived for `quietMs` (at most `maxMs`). */
  async quiet(quietMs: number, maxMs: number): Promise<void> {
    const end = performance.now() + maxMs;
    this.lastEventAt = Math.max(this.lastEventAt, performance.now());
    while (performance.now() - this.lastEventAt < quietMs && performance.now() < end) await sleep(50);
  }

  /**
   * One message into every room (from member 0), at `rate`: JIT warm-up, and proof that every
   * member on every server receives (throws when some delivery did not arrive).
   */
  async warmUp(rate: number, payloadBytes: number, signal: AbortSignal): Promise<void> {
    const tag = `w${Math.random().toString(36).slice(2, 8)}`;
    this.warm = { tag, got: 0 };
    const R = this.layout.rooms;
    const pad = 'x'.repeat(payloadBytes);
    const t0 = performance.now();
    const acks: Promise<unknown>[] = [];
    for (let r = 0; r < R && !signal.aborted; r++) {
      const wait = t0 + (r * 1000) / rate - performance.now();
      if (wait > 2) await sleep(wait);
      acks.push(
        this.clients[r * this.layout.members].emitWithAck('message', { roomId: this.roomName(r), data: { b: tag, s: r, t: 0, p: pad } }),
      );
    }
    await Promise.all(acks);
    const want = R * this.layout.members;
    const end = performance.now() + 20000;
    while (this.warm.got < want && performance.now() < end) await sleep(50);
    const got = this.warm.got;
    this.warm = undefined;
    if (got < want)
      throw new Error(
        `warm-up: ${got} of ${want} deliveries arrived (cross-server delivery not working?${this.closedClients ? `; ${this.closedClients} clients' connections closed` : ''})`,
      );
    await this.quiet(300, 10000);
  }

  /**
   * Sends `seconds` x `rate` messages on a fixed schedule, each from a member of its room (rooms
   * in a shuffled order, members in turn), then drains (until every delivery arrived, nothing
   * arrived for `drainQuietMs`, or `drainTimeoutMs`).
   */
  async run(
    rate: number,
    seconds: number,
    opts: { payloadBytes: number; drainQuietMs?: number; drainTimeoutMs?: number; signal: AbortSignal },
  ): Promise<LoadNumbers> {
    const R = this.layout.rooms;
    const M = this.layout.members;
    const K = Math.max(1, Math.round(rate * seconds));
    const tag = `m${Math.random().toString(36).slice(2, 8)}`;
    const rec = new Recorder(tag, K, M);
    this.recorder = rec;
    const order = shuffled(R);
    const pad = 'x'.repeat(opts.payloadBytes);
    const ackRtt: number[] = [];
    const ackErrorSamples: unknown[] = [];
    let acked = 0;
    let lateSends = 0;
    let lastAck = 0;
    const pending: Promise<void>[] = [];
    const t0 = performance.now();
    let next = 0;
    while (next < K && !opts.signal.aborted) {
      const now = performance.now();
      const due = Math.min(K, Math.floor(((now - t0) * rate) / 1000) + 1);
      while (next < due) {
        const seq = next++;
        const r = order[seq % R];
        const k = Math.floor(seq / R) % M;
        rec.roomOf[seq] = r;
        const ts = performance.now();
        if (ts - (t0 + (seq * 1000) / rate) > 50) lateSends++;
        pending.push(
          this.clients[r * M + k]
            .emitWithAck('message', { roomId: this.roomName(r), data: { b: tag, s: seq, t: ts, p: pad } })
            .then((a) => {
              const t = performance.now();
              lastAck = t;
              ackRtt.push(t - ts);
              if ((a as { ok?: boolean })?.ok) acked++;
              else if (ackErrorSamples.length < 5) ackErrorSamples.push(a);
            }),
        );
      }
      await sleep(4);
    }
    await Promise.race([Promise.all(pending), sleep(30000)]);
    const sent = next;
    const expected = acked * M;
    const drainStart = performance.now();
    const quietMs = opts.drainQuietMs ?? 2000;
    const timeoutMs = opts.drainTimeoutMs ?? 15000;
    while (
      rec.unique < expected &&
      performance.now() - drainStart < timeoutMs &&
      performance.now() - Math.max(rec.lastRecv, drainStart) < quietMs
    )
      await sleep(10);
    const end = rec.unique >= expected ? Math.max(rec.lastRecv, lastAck) : performance.now();
    this.recorder = undefined;
    const sendSeconds = ((lastAck || performance.now()) - t0) / 1000;
    return {
      tag,
      sent,
      acked,
      ackErrors: sent - acked,
      ackErrorSamples,
      expected,
      unique: rec.unique,
      lost: expected - rec.unique,
      duplicates: rec.duplicates,
      offeredRate: rate,
      achievedRate: acked / sendSeconds,
      sendSeconds,
      windowSeconds: (end - t0) / 1000,
      lateSends,
      closedClients: this.closedClients,
      latencyMs: stats(Array.from(rec.lat.subarray(0, rec.nLat))),
      ackRttMs: stats(ackRtt),
    };
  }

  close(): void {
    this.closing = true;
    for (const c of this.clients) c.terminate();
  }
}

/** 0..n-1 in a random order. */
function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
