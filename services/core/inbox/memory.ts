import { compareIds, type InboxMessage, type InboxOptions, type InboxStore } from './store';

/** Inboxes in memory (single node): the same semantics, lost with the process. */
export class MemoryInbox implements InboxStore {
  private boxes = new Map<
    string,
    {
      entries: Array<{ id: string; message: InboxMessage }>;
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
