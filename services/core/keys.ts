/** Builds every Redis key; ids are validated before they become part of a key. */

export const ROOM_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
export const USER_ID_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;
export const RESERVED_ROOM_PREFIXES = ['user:', 'presence:', '_'];
const NSP_RE = /^\/[A-Za-z0-9_.-]{0,128}$/;

/** True for a syntactically valid room id (reserved or not). */
export function isValidRoomId(id: unknown): id is string {
  return typeof id === 'string' && ROOM_ID_RE.test(id);
}

/** True for room ids clients may not join or target. */
export function isReservedRoom(id: string): boolean {
  return RESERVED_ROOM_PREFIXES.some((p) => id.startsWith(p));
}

/** True for a valid user id. */
export function isValidUserId(id: unknown): id is string {
  return typeof id === 'string' && USER_ID_RE.test(id);
}

function assert(ok: boolean, what: string, v: string): void {
  if (!ok) throw new TypeError(`invalid ${what} for a Redis key: ${JSON.stringify(v).slice(0, 80)}`);
}

/** Private room every socket of a user joins, used to reach all of them across pods. */
export function userRoom(userId: string): string {
  return `user:${userId}`;
}

/** Key builder bound to a prefix (REDIS_KEY_PREFIX). */
export class Keys {
  constructor(public readonly prefix: string) {}

  /** Adapter stream (every broadcast; recovery reads it). */
  adapterStream(): string {
    return `${this.prefix}:adapter`;
  }
  /** Adapter recovery session key prefix. */
  sessionPrefix(): string {
    return `${this.prefix}:session:`;
  }
  /** Adapter pub/sub channel prefix. */
  channelPrefix(): string {
    return `${this.prefix}:sio`;
  }
  /** Room membership: the two hashes one Lua script updates, sharing a hash tag. */
  room(nsp: string, room: string): { sockets: string; users: string } {
    assert(NSP_RE.test(nsp), 'namespace', nsp);
    assert(ROOM_ID_RE.test(room), 'room id', room);
    const tag = `{${nsp}|${room}}`;
    return { sockets: `${this.prefix}:room:${tag}:sockets`, users: `${this.prefix}:room:${tag}:users` };
  }
  /** Heartbeats of the gateway pods: field = pod name, value = JSON. */
  pods(): string {
    return `${this.prefix}:pods`;
  }
  /** Which rooms a pod's sockets are in (for the reaper): field "nsp\nroom\nsid". */
  podRooms(pod: string): string {
    assert(/^[A-Za-z0-9_.-]{1,253}$/.test(pod), 'pod name', pod);
    return `${this.prefix}:pod:{${pod}}:rooms`;
  }
}
