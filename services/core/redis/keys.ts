/** Builds every Redis key; ids are validated before they become part of a key. */

export const ROOM_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
/**
 * User ids (the token's `sub`): 1-255 printable ASCII characters (OpenID Connect's bound), so
 * identity providers' subjects like "auth0|5f1e..." work; no spaces, and none of "{", "}" (Redis
 * Cluster hash tags in keys) or "#" (reserved for counters in hashes keyed by user id).
 */
export const USER_ID_RE = /^[\x21\x22\x24-\x7a\x7c\x7e]{1,255}$/;
/** How USER_ID_RE reads in error messages. */
export const USER_ID_RULE = '1-255 printable ASCII characters, no spaces, "#", "{" or "}"';
export const RESERVED_ROOM_PREFIXES = ['user:', 'presence:', '_'];
const NSP_RE = /^\/[A-Za-z0-9_.-]{0,128}$/;
/** Publish ids (idempotency keys) from backends. */
export const PUBLISH_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
/**
 * Idempotency scopes: publish ids count per scope, so two backends never suppress each other's
 * publishes. The API uses 12 hex digits of the SHA-256 of the API key that authenticated the
 * request; entries backends XADD to the outbox themselves have the scope "direct".
 */
export const PUBLISH_SCOPE_RE = /^[0-9a-z]{1,16}$/;
export const DIRECT_SCOPE = 'direct';

/** A publish id within its scope ("<scope>:<id>"): what de-duplicates a publish, never what a client sees. */
export function scopedPublishId(scope: string, publishId: string): string {
  assert(PUBLISH_SCOPE_RE.test(scope), 'publish scope', scope);
  assert(PUBLISH_ID_RE.test(publishId), 'publish id', publishId);
  return `${scope}:${publishId}`;
}
const SCOPED_PUBLISH_ID_RE = /^[0-9a-z]{1,16}:[A-Za-z0-9_.:-]{1,128}$/;

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

/**
 * The adapter's name of a client room: prefixed, so that no client room can ever be another
 * socket's own room (a socket id) or an internal room; the prefix never shows on the wire.
 */
export function clientRoom(room: string): string {
  return `r:${room}`;
}

/** The client room id of an adapter room name, or undefined for any other room. */
export function clientRoomId(name: string): string | undefined {
  return name.startsWith('r:') ? name.slice(2) : undefined;
}

/** A pod's incarnation: its name (1-253 of [A-Za-z0-9_.-]) and a start id. */
const POD_RE = /^[A-Za-z0-9_.-]{1,300}$/;

/** Session ids (`pid`) as Socket.IO makes them (base64id): checked before they become keys. */
export const PID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Key builder bound to a prefix (REDIS_KEY_PREFIX). */
export class Keys {
  constructor(public readonly prefix: string) {}

  /** Adapter stream (every broadcast; recovery reads it). */
  adapterStream(): string {
    return `${this.prefix}:adapter`;
  }
  /** Adapter recovery session key prefix (the bare Socket.IO baseline of the benchmarks). */
  sessionPrefix(): string {
    return `${this.prefix}:session:`;
  }
  /** A recovery session of the sharded adapter (adapter/sessions.ts): a hash, its own slot. */
  session(pid: string): string {
    assert(PID_RE.test(pid), 'session id', pid);
    return `${this.prefix}:sess:{${pid}}`;
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
  /** Presence of one user in one namespace: sockets, pending offline, version (with presenceView(), all a presence script touches). */
  presence(nsp: string, userId: string): string {
    assert(NSP_RE.test(nsp), 'namespace', nsp);
    assert(USER_ID_RE.test(userId), 'user id', userId);
    return `${this.prefix}:presence:{${nsp}|${userId}}`;
  }
  /** What lookups read of (namespace, user): "<online|offline>:<lastSeen>", same slot as presence(). */
  presenceView(nsp: string, userId: string): string {
    return this.presenceViews(nsp, [userId])[0];
  }
  /** presenceView() of many users of one namespace (a bulk lookup builds 1,000 at once). */
  presenceViews(nsp: string, userIds: string[]): string[] {
    assert(NSP_RE.test(nsp), 'namespace', nsp);
    const head = `${this.prefix}:presence-view:{${nsp}|`;
    return userIds.map((u) => {
      assert(USER_ID_RE.test(u), 'user id', u);
      return `${head}${u}}`;
    });
  }
  /**
   * Last announced presence transition of (namespace, user). Its hash tag is the adapter stream
   * key, so that one script can append the announcement to the stream and record it (one slot).
   */
  presenceAnnounced(nsp: string, userId: string): string {
    assert(NSP_RE.test(nsp), 'namespace', nsp);
    assert(USER_ID_RE.test(userId), 'user id', userId);
    return `{${this.adapterStream()}}:presence-announced:${nsp}|${userId}`;
  }
  /** Marker of an announcement sent at most once (same slot as the adapter stream). */
  announceOnce(id: string): string {
    return `{${this.adapterStream()}}:once:${id}`;
  }
  /** Users whose offline decision is pending: member "nsp\nuserId", score = deadline (ms). */
  presenceDue(): string {
    return `${this.prefix}:presence-due`;
  }
  /**
   * Parked room memberships of sockets whose connection dropped (room-park-1.lua):
   * member "pod\nnsp\nsid\nroom,room,...", score = end of the grace period (ms).
   */
  roomLeaveDue(): string {
    return `${this.prefix}:room-leave-due`;
  }
  /** Online users of a namespace (versioned, with a "#count" field). */
  online(nsp: string): string {
    assert(NSP_RE.test(nsp), 'namespace', nsp);
    return `${this.prefix}:online:{${nsp}}`;
  }
  /** Sockets a pod holds, for the reaper: field "nsp\nsid" -> userId. */
  podSockets(pod: string): string {
    assert(POD_RE.test(pod), 'pod name', pod);
    return `${this.prefix}:pod:{${pod}}:sockets`;
  }
  /** Inbox of one user in one namespace: the stream, its acknowledged position, de-duplication keys (by scoped publish id). */
  inbox(nsp: string, userId: string): { stream: string; acked: string; bytes: string; dedup: (scopedId: string) => string } {
    assert(NSP_RE.test(nsp), 'namespace', nsp);
    assert(USER_ID_RE.test(userId), 'user id', userId);
    const base = `${this.prefix}:inbox:{${nsp}|${userId}}`;
    return {
      stream: base,
      acked: `${base}:acked`,
      bytes: `${base}:bytes`,
      dedup: (scopedId: string) => {
        assert(SCOPED_PUBLISH_ID_RE.test(scopedId), 'scoped publish id', scopedId);
        return `${base}:pub:${scopedId}`;
      },
    };
  }
  /** Pattern matching every inbox stream (retention sweeps). */
  inboxPattern(): string {
    return `${this.prefix}:inbox:{*}`;
  }
  /** The outbox stream, its idempotency keys (one per scope and publish id) and its dead-letter stream share one hash tag. */
  outbox(): { stream: string; dead: string; idem: (scope: string, publishId: string) => string } {
    const base = `${this.prefix}:{outbox}`;
    return {
      stream: base,
      dead: `${base}:dead`,
      idem: (scope: string, publishId: string) => `${base}:idem:${scopedPublishId(scope, publishId)}`,
    };
  }
  /** Which rooms a pod's sockets are in (for the reaper): field "nsp\nroom\nsid". */
  podRooms(pod: string): string {
    assert(POD_RE.test(pod), 'pod name', pod);
    return `${this.prefix}:pod:{${pod}}:rooms`;
  }
}
