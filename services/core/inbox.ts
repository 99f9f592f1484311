import type { Cluster, Redis } from 'ioredis';
import { UnavailableError } from './errors';
import type { Keys } from './keys';
import type { RedisClient } from './redis';

/** What an inbox holds: a direct message between users, or a backend publish to a user. */
export type InboxMessage =
  | { kind: 'direct'; from: string; text?: string; data?: unknown; timestamp: number; traceparent?: string }
  | { kind: 'publish'; event: string; data: unknown; publishId: string; timestamp: number; traceparent?: string };

/** A stored message with its inbox id, as `queued-messages` carries it. */
export type QueuedMessage = { id: string } & Record<string, unknown>;

/** The shape clients receive (live or replayed): the id first, no internal fields. */
export function clientView(id: string, m: InboxMessage): QueuedMessage {
  if (m.kind === 'direct') return { id, from: m.from, text: m.text, data: m.data, timestamp: m.timestamp };
  return { id, event: m.event, data: m.data, publishId: m.publishId, timestamp: m.timestamp };
}

export interface InboxOptions {
  maxLen: number;
  maxAgeMs: number;
  dedupWindowMs: number;
}

/** Durable per-user inboxes (PROTOCOL.md, Direct messages and the offline inbox). */
export interface InboxStore {
  /** Appends (once per publish id when given); resolves once durable in the store. */
  append(nsp: string, userId: string, m: InboxMessage, publishId?: string): Promise<{ id: string; appended: boolean }>;
  /** Moves the acknowledged position forward (never back, never past the newest message); returns the position. */
  ack(nsp: string, userId: string, upTo: string): Promise<string>;
  /** The acknowledged position, or null. */
  position(nsp: string, userId: string): Promise<string | null>;
  /** Messages strictly after `after` ('0-0' = from the start), oldest first. */
  range(nsp: string, userId: string, after: string, count: number): Promise<Array<{ id: string; message: InboxMessage }>>;
  /** Drops messages older than the retention age from every inbox; returns how many, and what is left. */
  trimByAge(now: number): Promise<number>;
  /** What the last retention pass saw: inbox streams and messages held. */
  lastDepth(): { streams: number; messages: number };
}

/** The next stream id after `id` (XRANGE is inclusive). */
export function nextId(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${BigInt(seq) + 1n}`;
}

/** Compares two stream ids. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}

type Scripted = RedisClient & {
  inboxAppend(stream: string, dedup: string, json: string, maxLen: number, ttl: number, window: number, useDedup: string): Promise<[string, number]>;
  inboxAck(acked: string, stream: string, upTo: string, ttl: number): Promise<string>;
};

/** Inboxes as Redis streams, one per (namespace, user), trimmed by count on write and by age by the worker. */
export class RedisInbox implements InboxStore {
  private r: Scripted;
  constructor(client: RedisClient, private keys: Keys, private opts: InboxOptions) {
    this.r = client as Scripted;
  }

  private check(): void {
    if (this.r.status !== 'ready') throw new UnavailableError();
  }

  async append(nsp: string, userId: string, m: InboxMessage, publishId?: string): Promise<{ id: string; appended: boolean }> {
    this.check();
    const k = this.keys.inbox(nsp, userId);
    const [id, appended] = await this.r.inboxAppend(k.stream, publishId ? k.dedup(publishId) : `${k.stream}:pub:-`, JSON.stringify(m), this.opts.maxLen, this.opts.maxAgeMs, this.opts.dedupWindowMs, publishId ? '1' : '0');
    return { id, appended: appended === 1 };
  }

  async ack(nsp: string, userId: string, upTo: string): Promise<string> {
    this.check();
    const k = this.keys.inbox(nsp, userId);
    return this.r.inboxAck(k.acked, k.stream, upTo, this.opts.maxAgeMs);
  }

  async position(nsp: string, userId: string): Promise<string | null> {
    this.check();
    return this.r.get(this.keys.inbox(nsp, userId).acked);
  }

  async range(nsp: string, userId: string, after: string, count: number): Promise<Array<{ id: string; message: InboxMessage }>> {
    this.check();
    const rows = await this.r.xrange(this.keys.inbox(nsp, userId).stream, nextId(after), '+', 'COUNT', count);
    const out: Array<{ id: string; message: InboxMessage }> = [];
    for (const [id, fields] of rows) {
      const i = fields.indexOf('m');
      try {
        out.push({ id, message: JSON.parse(fields[i + 1]) as InboxMessage });
      } catch {
        /* an entry not written by us is skipped */
      }
    }
    return out;
  }

  async trimByAge(now: number): Promise<number> {
    this.check();
    const minId = `${Math.max(0, now - this.opts.maxAgeMs)}-0`;
    const nodes = this.r.isCluster ? (this.r as Cluster).nodes('master') : [this.r as Redis];
    let trimmed = 0;
    const depth = { streams: 0, messages: 0 };
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = (await node.call('SCAN', cursor, 'MATCH', this.keys.inboxPattern(), 'COUNT', '500', 'TYPE', 'stream')) as [string, string[]];
        cursor = next;
        for (const k of keys) {
          trimmed += Number(await this.r.xtrim(k, 'MINID', minId));
          depth.streams++;
          depth.messages += Number(await this.r.xlen(k));
        }
      } while (cursor !== '0');
    }
    this.depth = depth;
    return trimmed;
  }

  private depth = { streams: 0, messages: 0 };
  lastDepth(): { streams: number; messages: number } {
    return this.depth;
  }
}

/** Inboxes in memory (single node): the same semantics, lost with the process. */
export class MemoryInbox implements InboxStore {
  private boxes = new Map<string, { entries: Array<{ id: string; message: InboxMessage }>; acked: string | null; last?: string; dedup: Map<string, { id: string; at: number }> }>();
  private lastMs = 0;
  private seq = 0;
  constructor(private opts: InboxOptions) {}

  private box(nsp: string, userId: string) {
    const k = `${nsp}\n${userId}`;
    let b = this.boxes.get(k);
    if (!b) this.boxes.set(k, (b = { entries: [], acked: null, dedup: new Map() }));
    return b;
  }

  private newId(): string {
    const now = Date.now();
    if (now > this.lastMs) {
      this.lastMs = now;
      this.seq = 0;
    } else this.seq++;
    return `${this.lastMs}-${this.seq}`;
  }

  async append(nsp: string, userId: string, m: InboxMessage, publishId?: string): Promise<{ id: string; appended: boolean }> {
    const b = this.box(nsp, userId);
    const now = Date.now();
    if (publishId) {
      const prev = b.dedup.get(publishId);
      if (prev && now - prev.at < this.opts.dedupWindowMs) return { id: prev.id, appended: false };
    }
    const id = this.newId();
    b.entries.push({ id, message: m });
    b.last = id;
    if (b.entries.length > this.opts.maxLen) b.entries.splice(0, b.entries.length - this.opts.maxLen);
    if (publishId) b.dedup.set(publishId, { id, at: now });
    return { id, appended: true };
  }

  async ack(nsp: string, userId: string, upTo: string): Promise<string> {
    const b = this.box(nsp, userId);
    // Never past the newest message: a future id must not swallow later messages.
    if (!b.last) return b.acked ?? '0-0';
    if (compareIds(b.last, upTo) < 0) upTo = b.last;
    if (!b.acked || compareIds(b.acked, upTo) < 0) b.acked = upTo;
    return b.acked;
  }

  async position(nsp: string, userId: string): Promise<string | null> {
    return this.boxes.get(`${nsp}\n${userId}`)?.acked ?? null;
  }

  async range(nsp: string, userId: string, after: string, count: number): Promise<Array<{ id: string; message: InboxMessage }>> {
    const b = this.boxes.get(`${nsp}\n${userId}`);
    if (!b) return [];
    return b.entries.filter((e) => compareIds(e.id, after) > 0).slice(0, count);
  }

  async trimByAge(now: number): Promise<number> {
    let n = 0;
    const min = `${now - this.opts.maxAgeMs}-0`;
    for (const b of this.boxes.values()) {
      const before = b.entries.length;
      b.entries = b.entries.filter((e) => compareIds(e.id, min) >= 0);
      n += before - b.entries.length;
      for (const [k, v] of b.dedup) if (now - v.at >= this.opts.dedupWindowMs) b.dedup.delete(k);
    }
    return n;
  }

  lastDepth(): { streams: number; messages: number } {
    let messages = 0;
    for (const b of this.boxes.values()) messages += b.entries.length;
    return { streams: this.boxes.size, messages };
  }
}
