/**
 * Restoring a session on the clustered engine, exactly and within bounds:
 *
 * 1. the session must belong to the user of the new token, and its rooms are checked against the
 *    new token's claims (disallowed ones are left);
 * 2. this pod subscribes the session's rooms, then runs a barrier on each of their shards: from
 *    then on their entries arrive live, and the barrier's answer is where the read stops;
 * 3. each room's history is read from the client's position (its offset vector, or the room's
 *    floor, whichever is later) to that answer, in pages, and merged in shard order; entries that
 *    arrive live past it wait in a buffer until the socket exists (then follow the missed packets);
 * 4. beyond the caps (entries read, packets missed), or when an offset is older than the window or
 *    than what a room's history still holds, the client gets a fresh session instead, counted by
 *    reason. A refused restore leaves the stored session as it was: an interrupted recovery can be
 *    retried.
 */
import type { Metrics, REFUSED_REASONS } from '../platform/metrics';
import { compareIds, decodeVector, encodeVector, formatId, maxId, offsetTime, parseId, type EntryId, type Vector } from './offsets';
import type { SessionStore, StoredSession } from './sessions';
import type { RestoreBuffer, ShardedAdapter } from './sharded-adapter';
import { NSP_ROOM } from './shards';
import { bodyData, parseBody } from './wire';
import { waitReady, type RedisClient } from '../redis/client';

export interface RestoreLimits {
  windowMs: number;
  /** Entries read from histories per restore, at most. */
  maxRead: number;
  /** Packets missed per restore, at most. */
  maxMissed: number;
}

/** Why a restore gave a fresh session (the `reason` label of realtime_gateway_recovery_refused_total). */
export type RefusedReason = (typeof REFUSED_REASONS)[number];

export interface Restored {
  /** What Socket.IO's Socket constructor takes as its previous session. */
  session: { sid: string; pid: string; rooms: string[]; data: unknown; missedPackets: unknown[][] };
  /** Rooms the new token no longer allows (left). */
  revoked: string[];
  /** Live frames for the socket that arrived during the restore: written right after the missed packets. */
  buffer: RestoreBuffer;
  /** Entries read. */
  read: number;
}

const PAGE = 500;
/** How long a restore waits for Redis to be reachable again before it gives a fresh session. */
const REDIS_WAIT_MS = 10_000;
const PID = /^[A-Za-z0-9_-]{1,64}$/;

class Refused extends Error {
  constructor(readonly reason: RefusedReason) {
    super(reason);
  }
}

interface Missed {
  id: EntryId;
  shard: number;
  data: unknown[];
}

/**
 * Restores session `pid` for `userId` from `offset`, or says why not. `allowed(room)` says which
 * of its rooms the new token still allows (adapter room names).
 */
export async function restore(
  deps: { adapter: ShardedAdapter; sessions: SessionStore; redis: RedisClient; metrics: Metrics; limits: RestoreLimits },
  pid: string,
  offset: string,
  userId: string,
  allowed: (room: string) => boolean,
): Promise<Restored | RefusedReason> {
  const { adapter, limits } = deps;
  const vector = decodeVector(offset, adapter.shardCount());
  const at = offsetTime(offset);
  if (!vector || at === null || !PID.test(pid)) return 'bad_offset';
  if (Date.now() - at > limits.windowMs) return 'expired';
  let stored: StoredSession | null;
  try {
    // Redis restarting: the reconnecting client waits (bounded) rather than losing its session.
    if (deps.redis.status !== 'ready') await waitReady(deps.redis, REDIS_WAIT_MS);
    stored = await deps.sessions.read(pid);
  } catch {
    return 'unavailable';
  }
  if (!stored) return 'no_session';
  if (stored.userId !== userId) return 'other_user';
  const rooms = [...stored.floors.keys()];
  const kept = rooms.filter((r) => r === NSP_ROOM || allowed(r));
  const revoked = rooms.filter((r) => r !== NSP_ROOM && !allowed(r));
  const buffer: RestoreBuffer = { rooms: new Set(kept), readTo: new Map(), frames: [] };
  adapter.restoring.add(buffer);
  try {
    await adapter.whenLive(kept, (shard, id) => buffer.readTo.set(shard, id));
    const { missed, read } = await readMissed(deps, stored, kept, vector, buffer.readTo);
    const missedPackets = withOffsets(missed, vector);
    deps.metrics.recoveryEntriesRead.inc(read);
    const live = kept.filter((r) => r !== NSP_ROOM);
    return { session: { sid: stored.sid, pid, rooms: [stored.sid, ...live], data: stored.data, missedPackets }, revoked, buffer, read };
  } catch (e) {
    adapter.restoring.delete(buffer);
    if (e instanceof Refused) return e.reason;
    return 'unavailable';
  }
}

async function readMissed(
  deps: { adapter: ShardedAdapter; redis: RedisClient; limits: RestoreLimits },
  stored: StoredSession,
  rooms: string[],
  vector: Vector,
  readTo: Map<number, EntryId>,
): Promise<{ missed: Missed[]; read: number }> {
  const { adapter, limits } = deps;
  const mine = new Set([stored.sid, ...rooms]);
  const oldest = Date.now() - limits.windowMs;
  const missed: Missed[] = [];
  let read = 0;
  for (const room of rooms) {
    const shard = adapter.shardOf(room);
    const to = readTo.get(shard)!;
    let from = maxId(vector.get(shard), stored.floors.get(room))!;
    while (compareIds(from, to) < 0) {
      const [trimmed, page] = await deps.redis.roomRead(adapter.streamOf(room), formatId(from), formatId(to), PAGE);
      if (trimmed === 1) throw new Refused('trimmed');
      read += page.length;
      if (read > limits.maxRead) throw new Refused('too_many_read');
      for (const [idText, fields] of page) {
        const id = parseId(idText)!;
        from = id;
        const body = parseBody(fields[fields.indexOf('m') + 1] ?? '');
        if (!body || id.ms < oldest || body.except.some((r) => mine.has(r))) continue;
        missed.push({ id, shard, data: bodyData(body) });
        if (missed.length > limits.maxMissed) throw new Refused('too_many_missed');
      }
      if (page.length < PAGE) break;
    }
  }
  missed.sort((a, b) => compareIds(a.id, b.id) || a.shard - b.shard);
  return { missed, read };
}

/** Each missed packet carries the position after it: the client's vector, advanced entry by entry. */
function withOffsets(missed: Missed[], vector: Vector): unknown[][] {
  const w: Vector = new Map(vector);
  return missed.map((m) => {
    w.set(m.shard, m.id);
    return [...m.data, encodeVector(w)];
  });
}
