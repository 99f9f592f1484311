/**
 * Announcements that must reach every pod exactly once even when the process making them dies
 * half-way (a reaper or sweeper killed mid-pass and retried by another): the entry is appended to
 * the adapter stream by a Lua script that also records it, so a retry can tell it was sent.
 * Every pod delivers such an entry (its uid is no pod's), and recovering clients replay it,
 * exactly like a broadcast.
 */

/** ClusterAdapter message type of a broadcast. */
const BROADCAST = '3';

/**
 * The field/value pairs of the adapter stream entry of a broadcast of `event` to `rooms` of
 * namespace `nsp` (the format @socket.io/redis-streams-adapter 0.3 writes and reads).
 */
export function adapterBroadcastFields(uid: string, nsp: string, rooms: string[], event: string, payload: unknown): string[] {
  const data = JSON.stringify({ packet: { type: 2, data: [event, payload], nsp }, opts: { rooms, except: [], flags: {} } });
  return ['uid', uid, 'nsp', nsp, 'type', BROADCAST, 'data', data];
}
