/**
 * Recovery sessions of the clustered engine: one Redis hash per session (`pid`), written as the
 * socket's state changes (a join adds a field, a leave removes one: never the whole session), so
 * a socket with a thousand presence subscriptions costs a field per subscription, once.
 *
 *   u       the user the session belongs to (a restore for anyone else is refused)
 *   s       the socket id
 *   d       socket.data (JSON)
 *   r:<room> the room's floor: the shard position from which its entries reach the socket
 *
 * The hash lives for the recovery window after the socket was last seen (refreshed while it is
 * connected, reset when it drops), and is deleted when the client disconnects on purpose.
 */
import { guarded, type RedisClient } from '../redis/client';
import type { Keys } from '../redis/keys';
import { formatId, parseId, type EntryId } from './offsets';

export interface StoredSession {
  userId: string;
  sid: string;
  data: Record<string, unknown>;
  floors: Map<string, EntryId>;
}

export class SessionStore {
  constructor(
    private redis: RedisClient,
    private keys: Keys,
    /** Recovery window (ms): how long a session outlives its socket. */
    private windowMs: number,
  ) {}

  /** TTL while the socket is connected: the window plus a refresh period, so a SIGKILLed pod's sessions still get their full window. */
  private liveTtl(): number {
    return Math.floor(this.windowMs * 1.5) + 1000;
  }

  async create(pid: string, sid: string, userId: string, data: unknown, floors: Map<string, EntryId>): Promise<void> {
    const k = this.keys.session(pid);
    const fields: string[] = ['u', userId, 's', sid, 'd', JSON.stringify(data ?? {})];
    for (const [room, id] of floors) fields.push(`r:${room}`, formatId(id));
    // No DEL first: the pid is new, and a join answered before this write (the client does not wait
    // for `session`) has recorded its room in the same hash already; it must stay.
    await guarded(this.redis, () =>
      this.redis
        .multi()
        .hset(k, ...fields)
        .pexpire(k, this.liveTtl())
        .exec(),
    );
  }

  /** Records rooms joined (with their floors). */
  async join(pid: string, floors: Map<string, EntryId>): Promise<void> {
    if (!floors.size) return;
    const fields: string[] = [];
    for (const [room, id] of floors) fields.push(`r:${room}`, formatId(id));
    await guarded(this.redis, () => this.redis.hset(this.keys.session(pid), ...fields));
  }

  async leave(pid: string, rooms: string[]): Promise<void> {
    if (!rooms.length) return;
    await guarded(this.redis, () => this.redis.hdel(this.keys.session(pid), ...rooms.map((r) => `r:${r}`)));
  }

  /** Rewrites socket.data (the principal of a re-authorized session). */
  async setData(pid: string, data: unknown): Promise<void> {
    await guarded(this.redis, () => this.redis.hset(this.keys.session(pid), 'd', JSON.stringify(data ?? {})));
  }

  /** Keeps the sessions of connected sockets alive (one pipeline). */
  async refresh(pids: string[]): Promise<void> {
    if (!pids.length) return;
    const ttl = this.liveTtl();
    await guarded(this.redis, () => Promise.all(pids.map((pid) => this.redis.pexpire(this.keys.session(pid), ttl))));
  }

  /** The socket dropped: the session lives for the recovery window from now. */
  async dropped(pid: string, data: unknown): Promise<void> {
    const k = this.keys.session(pid);
    await guarded(this.redis, () =>
      this.redis
        .multi()
        .hset(k, 'd', JSON.stringify(data ?? {}))
        .pexpire(k, this.windowMs)
        .exec(),
    );
  }

  /** The client left on purpose: its session ends. */
  async end(pid: string): Promise<void> {
    await guarded(this.redis, () => this.redis.del(this.keys.session(pid)));
  }

  async read(pid: string): Promise<StoredSession | null> {
    const h = await guarded(this.redis, () => this.redis.hgetall(this.keys.session(pid)));
    if (!h.u || !h.s) return null;
    const floors = new Map<string, EntryId>();
    for (const [f, v] of Object.entries(h)) {
      const id = f.startsWith('r:') ? parseId(v) : null;
      if (id) floors.set(f.slice(2), id);
    }
    let data: Record<string, unknown> = {};
    try {
      data = JSON.parse(h.d ?? '{}') as Record<string, unknown>;
    } catch {
      /* a damaged data field: the session comes back without it */
    }
    return { userId: h.u, sid: h.s, data, floors };
  }
}
