import type { Server } from 'socket.io';
import { adapterBroadcastFields } from './announce';
import type { Engine } from './engine';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { RedisClient } from './redis';
import { RedisStore } from './redis-store';

type Scripted = RedisClient & {
  roomReap(sockets: string, users: string, sid: string, pod: string): Promise<[number, number, string | null]>;
  announceOnce(stream: string, marker: string, ttlMs: number, maxLen: number, ...fields: string[]): Promise<string | null>;
};

/** Adapter uid of the reaper's announcements: no pod's, so every pod delivers them. */
const REAPER_UID = 'reaper';
/** How long a sent user-left is remembered: far longer than a reaper takes to be replaced. */
const ONCE_TTL_MS = 3_600_000;

/**
 * Removes the room memberships still recorded on `pod` and announces `user-left` for users whose
 * last socket they were. Memberships another pod took over (a recovered socket) are only unindexed.
 * With `waitUntil` (a graceful shutdown), it first waits for clients to recover elsewhere.
 *
 * Safe to kill at any point: each user-left owed is noted in the room (by the same script that
 * removes the membership) and the pod's index entry is dropped last, so the next pass (here or on
 * another worker) finds what is left and announces each user-left exactly once.
 */
export async function reapPod(engine: Engine, io: Server, pod: string, opts: { waitUntil?: number; logger: Logger; metrics: Metrics; streamMaxLen?: number }): Promise<number> {
  void io;
  const store = engine.store;
  if (!(store instanceof RedisStore) || !engine.redis) return 0;
  const r = engine.redis as Scripted;
  let entries = await store.podRoomEntries(pod);
  // Memberships already gone from the room: a reaper that died may still owe their user-left.
  const gone: typeof entries = [];
  for (;;) {
    const remaining = [];
    for (const e of entries) {
      const at = await store.socketPod(e.nsp, e.room, e.sid);
      if (at === pod) remaining.push(e);
      else if (at === null) gone.push(e);
      else await store.forgetPodRoom(pod, e.nsp, e.room, e.sid);
    }
    entries = remaining;
    if (!entries.length || !opts.waitUntil || Date.now() >= opts.waitUntil) break;
    await new Promise((res) => setTimeout(res, 250));
  }
  let reaped = 0;
  for (const e of [...entries, ...gone]) {
    const k = engine.keys.room(e.nsp, e.room);
    const [code, , userId] = await r.roomReap(k.sockets, k.users, e.sid, pod);
    if ((code === 1 || code === 2) && userId) {
      const fields = adapterBroadcastFields(REAPER_UID, e.nsp, [e.room], 'user-left', { room: e.room, userId, timestamp: Date.now() });
      await r.announceOnce(engine.keys.adapterStream(), engine.keys.announceOnce(`user-left:${e.nsp}|${e.room}|${e.sid}`), ONCE_TTL_MS, opts.streamMaxLen ?? 100000, ...fields);
      await r.hdel(k.sockets, `~left:${e.sid}`);
    }
    await store.forgetPodRoom(pod, e.nsp, e.room, e.sid);
  }
  reaped = entries.length;
  if (reaped) {
    opts.metrics.reapedSockets.inc(reaped);
    opts.logger.info({ pod, memberships: reaped }, 'reaped room memberships of a pod');
  }
  return reaped;
}
