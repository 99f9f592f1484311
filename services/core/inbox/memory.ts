import { compareIds, type InboxMessage, type InboxOptions, type InboxStore } from './store';

/** Inboxes in memory (single node): the same semantics, lost with the process. */
export class MemoryInbox implements InboxStore {
  private boxes = new Map<
    string,
    {
      entries: Array<{ id: string; message: InboxMessage; size: number }>;
      /** Sum of the entries' sizes (the byte cap). */
      bytes: number;
      acked: string | null;
      last?: string;
      dedup: Map<string, { id: string; at: number }>;
    }
  >();
  private lastMs = 0;
  private seq = 0;
  constructor(private opts: InboxOptions) {}

  private box(nsp: string, userId: string) {
    const k = `${nsp}\n${userId}`;
    let b = this.boxes.get(k);
    if (!b) this.boxes.set(k, (b = { entries: [], bytes: 0, acked: null, dedup: new Map() }));
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
    const size = JSON.stringify(m).length;
    b.entries.push({ id, message: m, size });
    b.bytes += size;
    b.last = id;
    // the count and byte caps: the oldest go first, the newest always stays
    while (b.entries.length > 1 && (b.entries.length > this.opts.maxLen || b.bytes > this.opts.maxBytes))
      b.bytes -= b.entries.shift()!.size;
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
    return b.entries
      .filter((e) => compareIds(e.id, after) > 0)
      .slice(0, count)
      .map((e) => ({ id: e.id, message: e.message }));
  }

  async trimByAge(now: number): Promise<number> {
    let n = 0;
    const min = `${now - this.opts.maxAgeMs}-0`;
    for (const b of this.boxes.values()) {
      const before = b.entries.length;
      b.entries = b.entries.filter((e) => compareIds(e.id, min) >= 0);
      b.bytes = b.entries.reduce((sum, e) => sum + e.size, 0);
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
