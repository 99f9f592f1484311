import type { Server } from 'socket.io';
import { broadcast, Engine } from './engine';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import { RedisStore } from './redis-store';

/**
 * Removes the room memberships still recorded on `pod` and announces `user-left` for users whose
 * last socket they were. Memberships another pod took over (a recovered socket) are only unindexed.
 * With `waitUntil` (a graceful shutdown), it first waits for clients to recover elsewhere.
 */
export async function reapPod(engine: Engine, io: Server, pod: string, opts: { waitUntil?: number; logger: Logger; metrics: Metrics }): Promise<number> {
  const store = engine.store;
  if (!(store instanceof RedisStore)) return 0;
  let entries = await store.podRoomEntries(pod);
  for (;;) {
    const remaining = [];
    for (const e of entries) {
      const at = await store.socketPod(e.nsp, e.room, e.sid);
      if (at === pod) remaining.push(e);
      else await store.forgetPodRoom(pod, e.nsp, e.room, e.sid);
    }
    entries = remaining;
    if (!entries.length || !opts.waitUntil || Date.now() >= opts.waitUntil) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  let reaped = 0;
  for (const e of entries) {
    const change = await store.roomLeave(e.nsp, e.room, e.sid, pod);
    reaped++;
    if (change.changed && change.userId) {
      await broadcast(io.of(e.nsp), { rooms: [e.room] }, 'user-left', { room: e.room, userId: change.userId, timestamp: Date.now() }).catch(() => undefined);
    }
  }
  if (reaped) {
    opts.metrics.reapedSockets.inc(reaped);
    opts.logger.info({ pod, memberships: reaped }, 'reaped room memberships of a pod');
  }
  return reaped;
}
