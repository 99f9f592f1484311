import type { Cluster, Redis } from 'ioredis';
import { UnavailableError } from '../platform/errors';
import type { RedisClient } from '../redis/client';
import type { Keys } from '../redis/keys';
import { nextId, type InboxMessage, type InboxOptions, type InboxStore } from './store';

const TRIM_PAGE = 1000;

/** Inboxes as Redis streams, one per (namespace, user), trimmed by count and bytes on write and by age by the worker. */
export class RedisInbox implements InboxStore {
  constructor(
    private r: RedisClient,
    private keys: Keys,
    private opts: InboxOptions,
  ) {}

  private check(): void {
    if (this.r.status !== 'ready') throw new UnavailableError();
  }

  async append(nsp: string, userId: string, m: InboxMessage, publishId?: string): Promise<{ id: string; appended: boolean }> {
    this.check();
    const k = this.keys.inbox(nsp, userId);
    const [id, appended] = await this.r.inboxAppend(
      k.stream,
      publishId ? k.dedup(publishId) : `${k.stream}:pub:-`,
      k.bytes,
      JSON.stringify(m),
      this.opts.maxLen,
      this.opts.maxAgeMs,
      this.opts.dedupWindowMs,
      publishId ? '1' : '0',
      this.opts.maxBytes,
    );
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
        const [next, keys] = (await node.call('SCAN', cursor, 'MATCH', this.keys.inboxPattern(), 'COUNT', '500', 'TYPE', 'stream')) as [
          string,
          string[],
        ];
        cursor = next;
        for (const k of keys) {
          // in pages, each taking the removed messages' sizes off the inbox's byte count
          for (let n = TRIM_PAGE; n === TRIM_PAGE;) trimmed += n = await this.r.inboxTrimAge(k, `${k}:bytes`, minId, TRIM_PAGE);
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
