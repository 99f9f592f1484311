/**
 * Room traffic is spread over `count` shards by a hash of (namespace, room). Every key and channel
 * of a shard carries the shard's hash tag, so that one Lua script can touch them all on Redis
 * Cluster, and the tags are chosen so that their slots spread evenly over the slot space (a
 * 3-master cluster with the usual contiguous slot ranges gets about a third of the shards each).
 */
import calculateSlot from 'cluster-key-slot';

/** Redis Cluster's slot count. */
const SLOTS = 16384;

/** FNV-1a, 32 bits: a cheap, stable hash of a string. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The room of a namespace-wide broadcast: every socket of the namespace is in it. */
export const NSP_ROOM = '*';

export class Shards {
  /** Hash tag (without braces) of each shard. */
  readonly tags: string[];
  private byTag = new Map<string, number>();

  constructor(
    prefix: string,
    readonly count: number,
  ) {
    this.tags = [];
    for (let i = 0; i < count; i++) {
      // The first tag whose slot falls in the i-th of `count` equal parts of the slot space.
      let n = 0;
      let tag = `${prefix}:a${i}`;
      while (Math.floor((calculateSlot(tag) * count) / SLOTS) !== i) tag = `${prefix}:a${i}.${++n}`;
      this.tags.push(tag);
      this.byTag.set(tag, i);
    }
  }

  /** The shard of a room of a namespace. */
  of(nsp: string, room: string): number {
    return fnv1a(`${nsp}\n${room}`) % this.count;
  }

  /** The shard whose hash tag opens `name` (a key or channel of ours), or -1. */
  ofName(name: string): number {
    const end = name.indexOf('}');
    return name.startsWith('{') && end > 0 ? (this.byTag.get(name.slice(1, end)) ?? -1) : -1;
  }

  /** The shard's sequence: the last entry id given out in it ("<ms>-<seq>"). */
  seq(shard: number): string {
    return `{${this.tags[shard]}}:seq`;
  }

  /** A room's history: the stream of its broadcasts, read by recovering sessions. */
  stream(shard: number, nsp: string, room: string): string {
    return `{${this.tags[shard]}}:r:${nsp}|${room}`;
  }

  /** A room's live channel (sharded pub/sub): pods with a member of the room subscribe to it. */
  channel(shard: number, nsp: string, room: string): string {
    return `{${this.tags[shard]}}:c:${nsp}|${room}`;
  }

  /** Parses a room channel back into its namespace and room; null for any other channel. */
  parseChannel(channel: string): { shard: number; nsp: string; room: string } | null {
    const shard = this.ofName(channel);
    if (shard < 0) return null;
    const head = `{${this.tags[shard]}}:c:`;
    if (!channel.startsWith(head)) return null;
    const bar = channel.indexOf('|', head.length);
    if (bar < 0) return null;
    return { shard, nsp: channel.slice(head.length, bar), room: channel.slice(bar + 1) };
  }

  /** A process's barrier channel on a shard (shard-barrier-1.lua answers there). */
  barrierChannel(shard: number, processId: string): string {
    return `{${this.tags[shard]}}:b:${processId}`;
  }

  /** Marker of an announcement sent at most once, in the slot of the room it goes to. */
  onceMarker(shard: number, id: string): string {
    return `{${this.tags[shard]}}:once:${id}`;
  }

  /** Last announced presence transition of (namespace, user), in the slot of the user's presence room. */
  presenceAnnounced(shard: number, nsp: string, userId: string): string {
    return `{${this.tags[shard]}}:pa:${nsp}|${userId}`;
  }
}
