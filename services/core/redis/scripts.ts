/**
 * Every Lua script, declared once: its ioredis command (typed through `RedisCommander` module
 * augmentation, so both `Redis` and `Cluster` clients have it) and its named result codes. The
 * scripts themselves are `lua/<name>-<numkeys>.lua`, each opening with its KEYS/ARGV/return doc.
 */
import fs from 'fs';
import path from 'path';
import type { Result } from 'ioredis';
import type { RedisClient } from './client';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    // rooms
    roomJoin(sockets: string, users: string, sid: string, userId: string, pod: string): Result<[RoomJoinFirst, number], Context>;
    roomLeave(sockets: string, users: string, sid: string, pod: string): Result<[RoomLeaveLast, number, string | null], Context>;
    roomPark(sockets: string, sid: string, pod: string, deadline: number): Result<number, Context>;
    roomReap(
      sockets: string,
      users: string,
      sid: string,
      pod: string,
      graceEnd: string,
      nonce: string,
    ): Result<[RoomReapCode, number, string | null, number, string | null], Context>;
    dueSettle(due: string, member: string, score: string): Result<number, Context>;
    // pods
    podHeartbeat(pods: string, pod: string, json: string, registered: string): Result<PodHeartbeatCode, Context>;
    podMarkReaped(pods: string, pod: string, cutoff: number): Result<string | null, Context>;
    podForget(pods: string, pod: string): Result<number, Context>;
    // presence
    presenceConnect(
      presence: string,
      view: string,
      sid: string,
      pod: string,
      now: number,
    ): Result<[PresenceConnectCode, number, string], Context>;
    presenceDisconnect(presence: string, view: string, sid: string, pod: string, now: number, deadline: number): Result<[number], Context>;
    presenceFinalize(presence: string, view: string, now: number): Result<[PresenceFinalizeCode, number, string | null], Context>;
    presenceSettle(presence: string, version: number): Result<number, Context>;
    presenceAnnounce(
      stream: string,
      last: string,
      version: number,
      status: string,
      maxLen: number,
      ttlMs: number,
      ...fields: string[]
    ): Result<string | null, Context>;
    onlineUpdate(online: string, userId: string, version: number, status: string): Result<number, Context>;
    // inbox
    inboxAppend(
      stream: string,
      dedup: string,
      bytes: string,
      json: string,
      maxLen: number,
      ttlMs: number,
      windowMs: number,
      useDedup: string,
      maxBytes: number,
    ): Result<[string, number], Context>;
    inboxTrimAge(stream: string, bytes: string, cutoff: string, count: number): Result<number, Context>;
    inboxAck(acked: string, stream: string, upTo: string, ttlMs: number): Result<string, Context>;
    // adapter
    roomPublish(
      seq: string,
      stream: string,
      guard: string,
      channel: string,
      maxLen: number,
      ttlMs: number,
      body: string,
      store: '0' | '1',
      guardKind: '' | 'once' | 'version',
      ...guardArgs: Array<string | number>
    ): Result<string | null, Context>;
    shardBarrier(seq: string, channel: string, token: string): Result<string, Context>;
    roomRead(stream: string, after: string, to: string, count: number): Result<[number, Array<[string, string[]]>], Context>;
    // outbox
    outboxPublish(stream: string, idem: string, windowMs: number, ...fields: string[]): Result<[string, number], Context>;
    outboxDeadLetter(
      stream: string,
      dead: string,
      group: string,
      id: string,
      attempts: number,
      error: string,
    ): Result<string | null, Context>;
  }
}

/** room-join-2.lua: whether the socket is the user's first in the room. */
export const RoomJoinFirst = { No: 0, Yes: 1 } as const;
export type RoomJoinFirst = (typeof RoomJoinFirst)[keyof typeof RoomJoinFirst];

/** room-leave-2.lua: whether the user's last socket left. */
export const RoomLeaveLast = { No: 0, Yes: 1 } as const;
export type RoomLeaveLast = (typeof RoomLeaveLast)[keyof typeof RoomLeaveLast];

/** room-reap-2.lua: what the removal owes. */
export const RoomReapCode = {
  /** Nothing to announce. */
  Nothing: 0,
  /** The user's last socket left now: announce user-left. */
  LeftNow: 1,
  /** It left earlier and user-left is still owed (a reaper died before announcing it). */
  StillOwed: 2,
} as const;
export type RoomReapCode = (typeof RoomReapCode)[keyof typeof RoomReapCode];

/** pod-heartbeat-1.lua. */
export const PodHeartbeatCode = { Alive: 0, ReapedMeanwhile: 1 } as const;
export type PodHeartbeatCode = (typeof PodHeartbeatCode)[keyof typeof PodHeartbeatCode];

/** presence-connect-2.lua. */
export const PresenceConnectCode = { NoTransition: 0, BecameOnline: 1 } as const;
export type PresenceConnectCode = (typeof PresenceConnectCode)[keyof typeof PresenceConnectCode];

/** presence-finalize-2.lua. */
export const PresenceFinalizeCode = {
  /** Not due yet: keep it on the due set. */
  NotDue: -1,
  /** Nothing to do (a socket is back, or offline and announced): drop it from the due set. */
  Nothing: 0,
  /** Became offline now: announce it. */
  BecameOffline: 1,
  /** Decided earlier by a caller that may have died before announcing it: announce it (again). */
  DecidedEarlier: 2,
} as const;
export type PresenceFinalizeCode = (typeof PresenceFinalizeCode)[keyof typeof PresenceFinalizeCode];

/** The commands above, by script file; `defineScripts` checks that the two lists agree. */
export const SCRIPTS = [
  'room-join-2',
  'room-leave-2',
  'room-park-1',
  'room-reap-2',
  'due-settle-1',
  'pod-heartbeat-1',
  'pod-mark-reaped-1',
  'pod-forget-1',
  'presence-connect-2',
  'presence-disconnect-2',
  'presence-finalize-2',
  'presence-settle-1',
  'online-update-1',
  'inbox-append-3',
  'inbox-trim-age-2',
  'inbox-ack-2',
  'room-publish-3',
  'shard-barrier-1',
  'room-read-1',
  'outbox-publish-2',
  'outbox-dead-letter-2',
] as const;

/** The camelCase command name of a script file name (`room-join-2` -> `roomJoin`). */
export function commandName(file: string): string {
  return file.replace(/-\d+$/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const LUA_DIR = path.join(__dirname, 'lua');

/** Loads every script as an ioredis command; fails at start-up when a declared script is missing or one is undeclared. */
export function defineScripts(client: RedisClient): void {
  const files = fs
    .readdirSync(LUA_DIR)
    .filter((f) => f.endsWith('.lua'))
    .map((f) => f.slice(0, -4));
  const declared = new Set<string>(SCRIPTS);
  const undeclared = files.filter((f) => !declared.has(f));
  const missing = SCRIPTS.filter((s) => !files.includes(s));
  if (undeclared.length || missing.length)
    throw new Error(
      `Lua scripts out of step with scripts.ts: undeclared ${undeclared.join(', ') || '-'}; missing ${missing.join(', ') || '-'}`,
    );
  for (const file of SCRIPTS) {
    const numberOfKeys = Number(/-(\d+)$/.exec(file)![1]);
    client.defineCommand(commandName(file), { numberOfKeys, lua: fs.readFileSync(path.join(LUA_DIR, `${file}.lua`), 'utf8') });
  }
}
