/**
 * Recovery offsets. Socket.IO clients keep one offset: the last argument of the last event they
 * got. With room traffic spread over shards, one stream id cannot say where a socket was in every
 * shard, so the offset a pod appends to a packet is its **position vector**: for each shard, the
 * id of the last entry it delivered from that shard. A pod delivers each shard's entries in id
 * order, so when a socket got a packet carrying vector V, it had got every entry of its rooms up
 * to V[s] in every shard s, and none after: a recovery resumes each of its rooms from V (see
 * sessions.ts), gap-free and without duplicates.
 *
 * Wire form (compact, one per packet, the same for every recipient of a broadcast on a pod):
 * `<anchor ms>~<shard>.<ms below the anchor>[-<seq>]~...`, numbers in base 36 (the anchor: see encodeVector).
 */

/** A stream entry id, `<ms>-<seq>`, as numbers. */
export interface EntryId {
  ms: number;
  seq: number;
}

export type Vector = Map<number, EntryId>;

/** Parses "<ms>-<seq>"; null when malformed. */
export function parseId(s: string): EntryId | null {
  const m = /^(\d{1,16})-(\d{1,16})$/.exec(s);
  return m ? { ms: Number(m[1]), seq: Number(m[2]) } : null;
}

export function formatId(id: EntryId): string {
  return `${id.ms}-${id.seq}`;
}

/** Orders two ids. */
export function compareIds(a: EntryId, b: EntryId): number {
  return a.ms - b.ms || a.seq - b.seq;
}

/** The larger of two ids (either may be missing). */
export function maxId(a: EntryId | undefined, b: EntryId | undefined): EntryId | undefined {
  if (!a) return b;
  if (!b) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

/** Longest offset accepted from a client; anything longer starts a fresh session. */
export const MAX_OFFSET_LENGTH = 1024;

/**
 * The wire form of a vector, anchored at `now` (or at its newest entry, if later): the anchor says
 * when the socket was last in touch, for the recovery window, even before any entry reached it.
 */
export function encodeVector(v: Vector, now = Date.now()): string {
  let max = now;
  for (const id of v.values()) if (id.ms > max) max = id.ms;
  let out = max.toString(36);
  for (const [shard, id] of v) out += `~${shard.toString(36)}.${(max - id.ms).toString(36)}${id.seq ? `-${id.seq.toString(36)}` : ''}`;
  return out;
}

const ENTRY = /^([0-9a-z]{1,3})\.([0-9a-z]{1,11})(?:-([0-9a-z]{1,11}))?$/;

/** Parses an offset a client sent; null when it is not one of ours (a fresh session starts). */
export function decodeVector(s: unknown, shards: number): Vector | null {
  if (typeof s !== 'string' || s.length > MAX_OFFSET_LENGTH) return null;
  const parts = s.split('~');
  if (!/^[0-9a-z]{1,11}$/.test(parts[0])) return null;
  const max = parseInt(parts[0], 36);
  const v: Vector = new Map();
  for (let i = 1; i < parts.length; i++) {
    const m = ENTRY.exec(parts[i]);
    if (!m) return null;
    const shard = parseInt(m[1], 36);
    const ms = max - parseInt(m[2], 36);
    if (shard >= shards || ms < 0 || v.has(shard)) return null;
    v.set(shard, { ms, seq: m[3] ? parseInt(m[3], 36) : 0 });
  }
  return v;
}

/** When the socket holding an offset was last in touch (its anchor, ms), or null when malformed. */
export function offsetTime(s: unknown): number | null {
  if (typeof s !== 'string') return null;
  const head = s.split('~', 1)[0];
  return /^[0-9a-z]{1,11}$/.test(head) ? parseInt(head, 36) : null;
}
