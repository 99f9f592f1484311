import type { Server } from 'socket.io';
import type { RedisClient } from '../redis/client';
import { broadcast } from './broadcast';
import type { Shards } from './shards';
import { encodeBody } from './wire';

/**
 * Announcements that must reach every pod exactly once even when the process making them dies
 * half-way and another one retries: the guard and the publish are one script
 * (room-publish-3.lua), so a retry can tell the announcement went out.
 */
export interface Announcer {
  /** Broadcasts `event` to `rooms` of `nsp` unless an announcement with the same `key` was sent (within an hour); true when sent now. */
  once(key: string, nsp: string, rooms: string[], event: string, payload: unknown): Promise<boolean>;
  /**
   * A presence transition to the subscribers of `room`: sent once per version, never after a
   * newer one, never the same status twice in a row; true when sent now.
   */
  versioned(
    nsp: string,
    room: string,
    markerOf: string,
    version: number,
    status: string,
    event: string,
    payload: unknown,
  ): Promise<boolean>;
}

/** How long a sent announcement is remembered: far longer than a reaper takes to be replaced. */
const ONCE_TTL_MS = 3_600_000;
/** How long the last announced presence version is kept: longer than any retry of or race between announcements. */
const ANNOUNCED_TTL_MS = 60_000;

/** Announcements published by room-publish-3.lua with its guards. */
export function redisAnnouncer(redis: RedisClient, shards: Shards, history: { maxLen: number; ttlMs: number }): Announcer {
  const publish = (
    nsp: string,
    room: string,
    body: string,
    guard: 'once' | 'version',
    guardKey: (s: number) => string,
    ...args: Array<string | number>
  ) => {
    const s = shards.of(nsp, room);
    const stream = shards.stream(s, nsp, room);
    return redis.roomPublish(
      shards.seq(s),
      stream,
      guardKey(s),
      shards.channel(s, nsp, room),
      history.maxLen,
      history.ttlMs,
      body,
      '1',
      guard,
      ...args,
    );
  };
  return {
    async once(key, nsp, rooms, event, payload) {
      let sent = false;
      for (const room of rooms) {
        const body = encodeBody([event, payload], {});
        sent = (await publish(nsp, room, body, 'once', (s) => shards.onceMarker(s, `${key}|${room}`), ONCE_TTL_MS)) !== null || sent;
      }
      return sent;
    },
    async versioned(nsp, room, markerOf, version, status, event, payload) {
      const body = encodeBody([event, payload], {});
      const id = await publish(
        nsp,
        room,
        body,
        'version',
        (s) => shards.presenceAnnounced(s, nsp, markerOf),
        version,
        status,
        ANNOUNCED_TTL_MS,
      );
      return id !== null;
    },
  };
}

/** A single node's announcements: one process, nothing to retry elsewhere, so plain broadcasts. */
export function localAnnouncer(io: Server): Announcer {
  return {
    async once(_key, nsp, rooms, event, payload) {
      await broadcast(io.of(nsp), { rooms }, event, payload);
      return true;
    },
    async versioned(nsp, room, _markerOf, _version, _status, event, payload) {
      await broadcast(io.of(nsp), { rooms: [room] }, event, payload);
      return true;
    },
  };
}
