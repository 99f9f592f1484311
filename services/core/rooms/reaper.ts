import { randomBytes } from 'crypto';
import type { Server } from 'socket.io';
import type { Engine } from '../engine';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import type { DueParked, Membership, RoomStore } from './store';
import type { Announcer } from '../adapter/announcer';
import { clientRoom } from '../redis/keys';

/** A sweep pass reads this many due entries at a time... */
const PAGE = 200;
/** ...and ends after this many pages (Redis trouble): the next pass retries. */
const MAX_PAGES = 50;
/** A due entry that cannot be decided (malformed) is retried this much later. */
const RETRY_MS = 60_000;

/**
 * Removes the room memberships still recorded on `pod` and announces `user-left` for users whose
 * last socket they were. Memberships another pod took over (a recovered socket) are only unindexed.
 * With `waitUntil` (a graceful shutdown), it first waits for clients to recover elsewhere.
 *
 * Safe to kill at any point: each user-left owed is noted in the room (by the same script that
 * removes the membership) and the pod's index entry is dropped last, so the next pass (here or on
 * another worker) finds what is left and announces each user-left exactly once.
 */
export async function reapPod(
  engine: Engine,
  io: Server,
  pod: string,
  opts: { waitUntil?: number; logger: Logger; metrics: Metrics },
): Promise<number> {
  const rooms = engine.rooms;
  let entries = await rooms.podMemberships(pod);
  // Memberships already gone from the room: a reaper that died may still owe their user-left.
  const gone: Membership[] = [];
  for (;;) {
    const remaining = [];
    for (const e of entries) {
      const at = await rooms.socketPod(e);
      if (at === pod) remaining.push(e);
      else if (at === null) gone.push(e);
      else await rooms.forgetPodMembership(pod, e);
    }
    entries = remaining;
    if (!entries.length || !opts.waitUntil || Date.now() >= opts.waitUntil) break;
    await new Promise((res) => setTimeout(res, 250));
  }
  const announcer = engine.announcer(io);
  for (const e of [...entries, ...gone]) await reapMembership(rooms, announcer, pod, e, null);
  const reaped = entries.length;
  if (reaped) {
    opts.metrics.reapedSockets.inc(reaped);
    opts.logger.info({ pod, memberships: reaped }, 'reaped room memberships of a pod');
  }
  return reaped;
}

/**
 * Removes one membership recorded on `pod` (with `graceEnd`: only while parked with a grace period
 * ending by then), announces the user-left it owes exactly once (noted in the room by the same
 * script with a nonce, sent at most once per nonce), and drops the pod's index entry once the
 * membership is no longer the pod's. True when a user-left was sent now.
 */
async function reapMembership(
  rooms: RoomStore,
  announcer: Announcer,
  pod: string,
  m: Membership,
  graceEnd: number | null,
): Promise<boolean> {
  const r = await rooms.reap(pod, m, graceEnd, randomBytes(6).toString('hex'));
  let sent = false;
  if (r.left) {
    const payload = { room: m.room, userId: r.left.userId, timestamp: Date.now() };
    sent = await announcer.once(`user-left:${m.nsp}|${m.room}|${m.sid}|${r.left.nonce}`, m.nsp, [clientRoom(m.room)], 'user-left', payload);
    await rooms.settleLeft(m);
  }
  if (r.done) await rooms.forgetPodMembership(pod, m);
  return sent;
}

/**
 * Ends the grace period of parked room memberships (RoomStore#parkRooms): those still parked at
 * their deadline are removed and their user-left announced once; those that came back stay.
 * Gateways and workers all sweep; each step is idempotent, so a sweeper killed half-way is
 * finished by the next one (the due entry is settled last). Returns the user-left announced.
 */
export async function sweepParkedRooms(engine: Engine, io: Server, opts: { now?: number; logger?: Logger } = {}): Promise<number> {
  const now = opts.now ?? Date.now();
  const rooms = engine.rooms;
  const announcer = engine.announcer(io);
  let n = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    const due = await rooms.dueParked(now, PAGE);
    for (const d of due) n += await settleDue(engine, rooms, announcer, d, opts.logger);
    if (due.length < PAGE) return n;
  }
  return n;
}

async function settleDue(engine: Engine, rooms: RoomStore, announcer: Announcer, d: DueParked, logger?: Logger): Promise<number> {
  let n = 0;
  try {
    for (const room of d.rooms) if (await reapMembership(rooms, announcer, d.pod, { nsp: d.nsp, room, sid: d.sid }, d.deadline)) n++;
    await rooms.settleParked(d);
  } catch (e) {
    if (!engine.available()) throw e;
    // One entry that cannot be decided (malformed) must not hold up the others: retried later.
    logger?.warn(
      { err: (e as Error).message, pod: String(d.pod).slice(0, 100), sid: String(d.sid).slice(0, 100) },
      'parked membership entry failed; retrying in a minute',
    );
    await rooms.postponeParked(d, RETRY_MS);
  }
  return n;
}
