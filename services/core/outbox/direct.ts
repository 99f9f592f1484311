import type { Server } from 'socket.io';
import type { InboxStore } from '../inbox/store';
import type { Metrics } from '../platform/metrics';
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
    if (this.seen.has(p.id)) return { id: p.id, duplicate: true };
    await deliver(this.io, this.inbox, p, this.metrics);
    this.seen.set(p.id, now);
    return { id: p.id, duplicate: false };
  }
}
