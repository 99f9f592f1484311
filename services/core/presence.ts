import type { Server } from 'socket.io';
import { broadcast } from './engine';
import { UnavailableError } from './errors';
import type { Keys } from './keys';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { RedisClient } from './redis';
import type { Cluster, Redis } from 'ioredis';

export type Status = 'online' | 'offline';

/** One user's presence as clients see it. */
export interface PresenceEntry {
  userId: string;
  status: Status;
  lastSeen: number | null;
}

/** A transition to announce to the subscribers of `presence:<userId>` in `nsp`. */
export interface Transition {
  nsp: string;
  userId: string;
  status: Status;
  lastSeen: number;
  version: number;
}

/** The engine-specific part of presence; each method is one atomic transition. */
export interface PresenceStore {
  connect(nsp: string, userId: string, sid: string, pod: string, now: number): Promise<Transition | null>;
  /** Removes a socket; when it was the user's last, offline becomes pending until `deadline`. */
  disconnect(nsp: string, userId: string, sid: string, pod: string, now: number, deadline: number): Promise<void>;
  /** Decides every pending offline whose deadline passed; returns the transitions to announce. */
  finalizeDue(now: number, limit: number): Promise<Transition[]>;
  get(nsp: string, userIds: string[]): Promise<PresenceEntry[]>;
  /** The sockets a pod holds: what the reaper removes when the pod dies. */
  podSockets(pod: string): Promise<Array<{ nsp: string; sid: string; userId: string }>>;
  /** Records an announced transition in the namespace's online count. */
  recordOnline(t: Transition): Promise<void>;
  /** Online users per namespace. */
  onlineCounts(): Promise<Map<string, number>>;
}

type Scripted = RedisClient & {
  presenceConnect(k: string, sid: string, pod: string, now: number): Promise<[number, number, string]>;
  presenceDisconnect(k: string, sid: string, pod: string, now: number, deadline: number): Promise<[number]>;
  presenceFinalize(k: string, now: number): Promise<[number, number, string | null]>;
  onlineUpdate(k: string, userId: string, v: number, s: string): Promise<number>;
};

function entry(userId: string, vals: (string | null)[] | undefined): PresenceEntry {
  const [status, lastSeen] = vals ?? [];
  return { userId, status: status === 'online' ? 'online' : 'offline', lastSeen: lastSeen ? Number(lastSeen) : null };
}

/** Presence in Redis: one hash per (namespace, user), one Lua script per transition. */
export class RedisPresence implements PresenceStore {
  private r: Scripted;
  constructor(client: RedisClient, private keys: Keys) {
    this.r = client as Scripted;
  }

  private check(): void {
    if (this.r.status !== 'ready') throw new UnavailableError();
  }

  async connect(nsp: string, userId: string, sid: string, pod: string, now: number): Promise<Transition | null> {
    this.check();
    await this.r.hset(this.keys.podSockets(pod), `${nsp}\n${sid}`, userId);
    const [t, v, lastSeen] = await this.r.presenceConnect(this.keys.presence(nsp, userId), sid, pod, now);
    return t === 1 ? { nsp, userId, status: 'online', lastSeen: Number(lastSeen), version: v } : null;
  }

  async disconnect(nsp: string, userId: string, sid: string, pod: string, now: number, deadline: number): Promise<void> {
    this.check();
    // The due entry goes first: if this process dies right after, another one still decides.
    await this.r.zadd(this.keys.presenceDue(), deadline, `${nsp}\n${userId}`);
    await this.r.presenceDisconnect(this.keys.presence(nsp, userId), sid, pod, now, deadline);
    await this.r.hdel(this.keys.podSockets(pod), `${nsp}\n${sid}`);
  }

  async finalizeDue(now: number, limit: number): Promise<Transition[]> {
    this.check();
    const due = await this.r.zrangebyscore(this.keys.presenceDue(), '-inf', now, 'LIMIT', 0, limit);
    const out: Transition[] = [];
    for (const member of due) {
      const [nsp, userId] = member.split('\n');
      const [code, v, lastSeen] = await this.r.presenceFinalize(this.keys.presence(nsp, userId), now);
      if (code === 1) out.push({ nsp, userId, status: 'offline', lastSeen: Number(lastSeen), version: v });
      if (code !== -1) await this.r.zrem(this.keys.presenceDue(), member);
    }
    return out;
  }

  async get(nsp: string, userIds: string[]): Promise<PresenceEntry[]> {
    this.check();
    if (this.r.isCluster) {
      // Keys live on several nodes: auto-pipelining sends one batch per node.
      const rows = await Promise.all(userIds.map((u) => this.r.hmget(this.keys.presence(nsp, u), 'status', 'lastSeen')));
      return userIds.map((userId, i) => entry(userId, rows[i]));
    }
    // One pipeline: a single round trip to Redis for up to 1,000 users.
    const p = this.r.pipeline();
    for (const u of userIds) p.hmget(this.keys.presence(nsp, u), 'status', 'lastSeen');
    const res = (await p.exec()) ?? [];
    return userIds.map((userId, i) => {
      const [err, vals] = res[i] ?? [];
      if (err) throw err;
      return entry(userId, vals as (string | null)[]);
    });
  }

  async podSockets(pod: string): Promise<Array<{ nsp: string; sid: string; userId: string }>> {
    this.check();
    const h = await this.r.hgetall(this.keys.podSockets(pod));
    return Object.entries(h).map(([f, userId]) => {
      const [nsp, sid] = f.split('\n');
      return { nsp, sid, userId };
    });
  }

  async recordOnline(t: Transition): Promise<void> {
    await this.r.onlineUpdate(this.keys.online(t.nsp), t.userId, t.version, t.status === 'online' ? '1' : '0');
  }

  async onlineCounts(): Promise<Map<string, number>> {
    this.check();
    const out = new Map<string, number>();
    const pattern = `${this.keys.prefix}:online:{*}`;
    // SCAN walks one node: on a cluster, walk every master.
    const nodes = this.r.isCluster ? (this.r as Cluster).nodes('master') : [this.r as Redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        for (const k of keys) {
          const nsp = k.slice(k.indexOf('{') + 1, k.lastIndexOf('}'));
          out.set(nsp, Number((await this.r.hget(k, '#count')) ?? 0));
        }
      } while (cursor !== '0');
    }
    return out;
  }
}

/** Presence on a single node: the same transitions, in memory. */
export class MemoryPresence implements PresenceStore {
  private users = new Map<string, { sockets: Map<string, string>; status: Status; lastSeen: number | null; pending?: number; v: number }>();
  private due = new Map<string, number>();
  private online = new Map<string, Set<string>>();

  private user(nsp: string, userId: string) {
    const k = `${nsp}\n${userId}`;
    let u = this.users.get(k);
    if (!u) {
      u = { sockets: new Map(), status: 'offline', lastSeen: null, v: 0 };
      this.users.set(k, u);
    }
    return u;
  }

  async connect(nsp: string, userId: string, sid: string, pod: string, now: number): Promise<Transition | null> {
    const u = this.user(nsp, userId);
    u.sockets.set(sid, pod);
    u.pending = undefined;
    if (u.status === 'online') return null;
    u.status = 'online';
    u.lastSeen = now;
    u.v++;
    return { nsp, userId, status: 'online', lastSeen: now, version: u.v };
  }

  async disconnect(nsp: string, userId: string, sid: string, pod: string, now: number, deadline: number): Promise<void> {
    const u = this.user(nsp, userId);
    if (u.sockets.get(sid) !== pod) return;
    u.sockets.delete(sid);
    if (u.sockets.size) return;
    u.lastSeen = now;
    u.pending = deadline;
    this.due.set(`${nsp}\n${userId}`, deadline);
  }

  async finalizeDue(now: number): Promise<Transition[]> {
    const out: Transition[] = [];
    for (const [k, deadline] of this.due) {
      if (deadline > now) continue;
      this.due.delete(k);
      const u = this.users.get(k);
      if (!u || u.sockets.size || u.status !== 'online') continue;
      u.status = 'offline';
      u.pending = undefined;
      u.v++;
      const [nsp, userId] = k.split('\n');
      out.push({ nsp, userId, status: 'offline', lastSeen: u.lastSeen ?? now, version: u.v });
    }
    return out;
  }

  async get(nsp: string, userIds: string[]): Promise<PresenceEntry[]> {
    return userIds.map((userId) => {
      const u = this.users.get(`${nsp}\n${userId}`);
      return { userId, status: u?.status ?? 'offline', lastSeen: u?.lastSeen ?? null };
    });
  }

  async podSockets(): Promise<Array<{ nsp: string; sid: string; userId: string }>> {
    return [];
  }

  async recordOnline(t: Transition): Promise<void> {
    let s = this.online.get(t.nsp);
    if (!s) this.online.set(t.nsp, (s = new Set()));
    if (t.status === 'online') s.add(t.userId);
    else s.delete(t.userId);
  }

  async onlineCounts(): Promise<Map<string, number>> {
    return new Map([...this.online].map(([k, v]) => [k, v.size]));
  }
}

/** The room a subscriber of `userId`'s presence joins. */
export function presenceRoom(userId: string): string {
  return `presence:${userId}`;
}

/**
 * Presence as the services use it: applies transitions, announces each exactly once to the
 * subscribers (through the adapter, so across pods), keeps the online counts, and sweeps
 * pending offlines. Gateways and workers both sweep; the scripts make only one of them win.
 */
export class Presence {
  constructor(
    public readonly store: PresenceStore,
    private io: Server,
    private opts: { pod: string; graceMs: number; logger: Logger; metrics: Metrics },
  ) {}

  /** Announces a transition and records it in the online count. */
  async announce(t: Transition): Promise<void> {
    this.opts.metrics.presenceTransitions.inc({ kind: t.status });
    await broadcast(this.io.of(t.nsp), { rooms: [presenceRoom(t.userId)] }, 'presence', { userId: t.userId, status: t.status, lastSeen: t.lastSeen });
    await this.store.recordOnline(t).catch((e) => this.opts.logger.debug({ err: (e as Error).message }, 'online count update failed'));
  }

  async connected(nsp: string, userId: string, sid: string): Promise<void> {
    const t = await this.store.connect(nsp, userId, sid, this.opts.pod, Date.now());
    if (t) await this.announce(t);
  }

  async disconnected(nsp: string, userId: string, sid: string, pod = this.opts.pod, deadline?: number): Promise<void> {
    const now = Date.now();
    await this.store.disconnect(nsp, userId, sid, pod, now, deadline ?? now + this.opts.graceMs);
  }

  /** Decides and announces every offline whose grace period is over. */
  async sweep(): Promise<number> {
    let n = 0;
    for (;;) {
      const ts = await this.store.finalizeDue(Date.now(), 200);
      for (const t of ts) await this.announce(t);
      n += ts.length;
      if (ts.length < 200) return n;
    }
  }

  /** Removes every socket a dead pod held; their offlines are announced by the sweep. */
  async reapPod(pod: string, deadline: number): Promise<number> {
    const sockets = await this.store.podSockets(pod);
    for (const s of sockets) await this.disconnected(s.nsp, s.userId, s.sid, pod, deadline);
    if (sockets.length) this.opts.metrics.reapedSockets.inc(sockets.length);
    return sockets.length;
  }
}
