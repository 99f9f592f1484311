import type { Server } from 'socket.io';
import type { InboxStore } from '../inbox/store';
import type { Metrics } from '../platform/metrics';
import { DIRECT_SCOPE, scopedPublishId } from '../redis/keys';
import { deliver, type Outbox, type Publish } from './publish';

/** The single-node outbox: no Redis, so a publish is delivered in process before it is acknowledged. */
export class DirectOutbox implements Outbox {
  private seen = new Map<string, number>();
  constructor(
    private io: Server,
    private inbox: InboxStore,
    private metrics: Metrics,
    private windowMs: number,
  ) {}
  async publish(p: Publish): Promise<{ id: string; duplicate: boolean }> {
    const now = Date.now();
    for (const [k, at] of this.seen) if (now - at > this.windowMs) this.seen.delete(k);
    // Ids count per scope (the API key), as in the Redis outbox.
    const key = scopedPublishId(p.scope ?? DIRECT_SCOPE, p.id);
    if (this.seen.has(key)) return { id: p.id, duplicate: true };
    await deliver(this.io, this.inbox, p, this.metrics);
    this.seen.set(key, now);
    return { id: p.id, duplicate: false };
  }
}
