import { guarded, type RedisClient } from '../redis/client';
import { DIRECT_SCOPE, type Keys } from '../redis/keys';
import { encodeEntry, type Outbox, type Publish } from './publish';

/** The Redis outbox: one stream drained by the workers' consumer group. */
export class RedisOutbox implements Outbox {
  constructor(
    private client: RedisClient,
    private keys: Keys,
    private windowMs: number,
  ) {}
  async publish(p: Publish): Promise<{ id: string; duplicate: boolean }> {
    const k = this.keys.outbox();
    const [, appended] = await guarded(this.client, () =>
      this.client.outboxPublish(k.stream, k.idem(p.scope ?? DIRECT_SCOPE, p.id), this.windowMs, ...encodeEntry(p)),
    );
    return { id: p.id, duplicate: appended === 0 };
  }
}
