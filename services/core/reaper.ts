import { randomBytes } from 'crypto';
import type { Server } from 'socket.io';
import { adapterBroadcastFields } from './announce';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { RedisClient } from './redis';
import { broadcast, type Engine } from './engine';
import { MemoryStore } from './memory-store';
import { RedisStore } from './redis-store';

type Scripted = RedisClient & {
  roomReap(sockets: string, users: string, sid: string, pod: string, graceEnd: string, nonce: string): Promise<[number, number, string | null, number, string | null]>;
  announceOnce(stream: string, marker: string, ttlMs: number, maxLen: number, ...fields: string[]): Promise<string | null>;
  dueSettle(k: string, member: string, score: string): Promise<number>;
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
  for (const e of [...entries, ...gone]) await reapMembership(engine, r, store, pod, e, '0', opts.streamMaxLen);
  const reaped = entries.length;
  if (reaped) {
    opts.metrics.reapedSockets.inc(reaped);
    opts.logger.info({ pod, memberships: reaped }, 'reaped room memberships of a pod');
  }
  return reaped;
}

/**
 * Removes one membership recorded on `pod` (with `graceEnd` other than "0": only while parked with
 * a grace period ending by then), announces the user-left it owes exactly once (noted in the room
 * by the same script with a nonce, sent at most once per nonce), and drops the pod's index entry
 * once the membership is no longer the pod's. True when a user-left was sent now.
 */
async function reapMembership(engine: Engine, r: Scripted, store: RedisStore, pod: string, e: { nsp: string; room: string; sid: string }, graceEnd: string, streamMaxLen = 100000): Promise<boolean> {
  const k = engine.keys.room(e.nsp, e.room);
  const [code, , userId, done, nonce] = await r.roomReap(k.sockets, k.users, e.sid, pod, graceEnd, randomBytes(6).toString('hex'));
  let sent = false;
  if ((code === 1 || code === 2) && userId) {
    const fields = adapterBroadcastFields(REAPER_UID, e.nsp, [e.room], 'user-left', { room: e.room, userId, timestamp: Date.now() });
    sent = (await r.announceOnce(engine.keys.adapterStream(), engine.keys.announceOnce(`user-left:${e.nsp}|${e.room}|${e.sid}|${nonce ?? ''}`), ONCE_TTL_MS, streamMaxLen, ...fields)) !== null;
    await r.hdel(k.sockets, `~left:${e.sid}`);
  }
  if (done === 1) await store.forgetPodRoom(pod, e.nsp, e.room, e.sid);
  return sent;
}

/**
 * Ends the grace period of parked room memberships (Store#parkRooms): those still parked at
 * their deadline are removed and their user-left announced once; those that came back stay.
 * Gateways and workers all sweep; each step is idempotent, so a sweeper killed half-way is
 * finished by the next one (the due entry is settled last). Returns the user-left announced.
 */
export async function sweepParkedRooms(engine: Engine, io: Server, opts: { streamMaxLen?: number; now?: number; logger?: Logger } = {}): Promise<number> {
  const now = opts.now ?? Date.now();
  const store = engine.store;
  if (store instanceof MemoryStore) {
    const left = await store.leaveDueParked(now);
    for (const l of left) await broadcast(io.of(l.nsp), { rooms: [l.room] }, 'user-left', { room: l.room, userId: l.userId, timestamp: now });
    return left.length;
  }
  if (!(store instanceof RedisStore) || !engine.redis) return 0;
  const r = engine.redis as Scripted;
  const key = engine.keys.roomLeaveDue();
  let n = 0;
  // Bounded: a pass that cannot settle its entries (Redis trouble) ends and the next one retries.
  for (let pass = 0; pass < 50; pass++) {
    const due = await r.zrangebyscore(key, '-inf', now, 'WITHSCORES', 'LIMIT', 0, 200);
    for (let i = 0; i < due.length; i += 2) {
      const [member, score] = [due[i], due[i + 1]];
      const [pod, nsp, sid, rooms] = member.split('\n');
      try {
        for (const room of rooms ? rooms.split(',') : []) if (await reapMembership(engine, r, store, pod, { nsp, room, sid }, score, opts.streamMaxLen)) n++;
        await r.dueSettle(key, member, score);
      } catch (e) {
        if (!engine.available()) throw e;
        // One entry that cannot be decided (malformed) must not hold up the others: retried later.
        opts.logger?.warn({ err: (e as Error).message, member: member.slice(0, 200) }, 'parked membership entry failed; retrying in a minute');
        await r.zadd(key, 'XX', Number(score) + 60_000, member);
      }
    }
    if (due.length < 2 * 200) return n;
  }
  return n;
}