import type { Server } from 'socket.io';
import { adapterBroadcastFields } from './announce';
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
  /** The due-set entry this offline was decided from (Redis): settled once it is announced. */
  due?: { member: string; score: string };
}

/** The engine-specific part of presence; each method is one atomic transition. */
export interface PresenceStore {
  connect(nsp: string, userId: string, sid: string, pod: string, now: number): Promise<Transition | null>;
  /** Removes a socket; when it was the user's last, offline becomes pending until `deadline`. */
  disconnect(nsp: string, userId: string, sid: string, pod: string, now: number, deadline: number): Promise<void>;
  /**
   * Decides every pending offline whose deadline passed; returns the transitions to announce,
   * including ones decided earlier by a caller that died before announcing them.
   */
  finalizeDue(now: number, limit: number): Promise<Transition[]>;
  /**
   * Publishes a transition to the subscribers on every pod, at most once per version and never
   * after a newer one (a retried or overtaken announcement is skipped); false when skipped.
   * Stores without it are announced with a plain broadcast.
   */
  announce?(t: Transition, payload: PresenceEntry): Promise<boolean>;
  /** Called once a transition from finalizeDue is announced: it no longer needs to be. */
  settle?(t: Transition): Promise<void>;
  get(nsp: string, userIds: string[]): Promise<PresenceEntry[]>;
  /** The sockets a pod holds: what the reaper removes when the pod dies. */
  podSockets(pod: string): Promise<Array<{ nsp: string; sid: string; userId: string }>>;
  /** Records an announced transition in the namespace's online count. */
  recordOnline(t: Transition): Promise<void>;
  /** Online users per namespace. */
  onlineCounts(): Promise<Map<string, number>>;
}

type Scripted = RedisClient & {
  presenceConnect(k: string, view: string, sid: string, pod: string, now: number): Promise<[number, number, string]>;
  presenceDisconnect(k: string, view: string, sid: string, pod: string, now: number, deadline: number): Promise<[number]>;
  presenceFinalize(k: string, view: string, now: number): Promise<[number, number, string | null]>;
  presenceSettle(k: string, v: number): Promise<number>;
  dueSettle(k: string, member: string, score: string): Promise<number>;
  presenceAnnounce(stream: string, last: string, v: number, status: string, maxLen: number, ttlMs: number, ...fields: string[]): Promise<string | null>;
  onlineUpdate(k: string, userId: string, v: number, s: string): Promise<number>;
};

/** A lookup row from a presence view, "<online|offline>:<lastSeen ms>" (null: never seen). */
function entry(userId: string, view: string | null): PresenceEntry {
  if (!view) return { userId, status: 'offline', lastSeen: null };
  const sep = view.indexOf(':');
  const lastSeen = view.slice(sep + 1);
  return { userId, status: view.startsWith('online') ? 'online' : 'offline', lastSeen: lastSeen ? Number(lastSeen) : null };
}

/** Adapter uid of presence announcements: no pod's, so every pod (the announcer too) delivers them. */
const ANNOUNCER_UID = 'presence';
/**
 * How long the last announced version of a user is kept: longer than any retry of an
 * announcement (a sweeper that died is replaced within a sweep period) or race between two.
 */
const ANNOUNCED_TTL_MS = 60_000;

/**
 * Presence in Redis, per (namespace, user): a hash (sockets, pending offline, version) and a
 * view string (status and lastSeen, what lookups read) under one hash tag; one Lua script per
 * transition updates both.
 */
export class RedisPresence implements PresenceStore {
  private r: Scripted;
  constructor(client: RedisClient, private keys: Keys, private opts: { streamMaxLen: number } = { streamMaxLen: 100000 }) {
    this.r = client as Scripted;
  }

  private check(): void {
    if (this.r.status !== 'ready') throw new UnavailableError();
  }

  async connect(nsp: string, userId: string, sid: string, pod: string, now: number): Promise<Transition | null> {
    this.check();
    await this.r.hset(this.keys.podSockets(pod), `${nsp}\n${sid}`, userId);
    const [t, v, lastSeen] = await this.r.presenceConnect(this.keys.presence(nsp, userId), this.keys.presenceView(nsp, userId), sid, pod, now);
    return t === 1 ? { nsp, userId, status: 'online', lastSeen: Number(lastSeen), version: v } : null;
  }

  async disconnect(nsp: string, userId: string, sid: string, pod: string, now: number, deadline: number): Promise<void> {
    this.check();
    // The due entry goes first: if this process dies right after, another one still decides.
    await this.r.zadd(this.keys.presenceDue(), deadline, `${nsp}\n${userId}`);
    await this.r.presenceDisconnect(this.keys.presence(nsp, userId), this.keys.presenceView(nsp, userId), sid, pod, now, deadline);
    await this.r.hdel(this.keys.podSockets(pod), `${nsp}\n${sid}`);
  }

  async finalizeDue(now: number, limit: number): Promise<Transition[]> {
    this.check();
    const due = await this.r.zrangebyscore(this.keys.presenceDue(), '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit);
    const out: Transition[] = [];
    for (let i = 0; i < due.length; i += 2) {
      const [member, score] = [due[i], due[i + 1]];
      const [nsp, userId] = member.split('\n');
      const [code, v, lastSeen] = await this.r.presenceFinalize(this.keys.presence(nsp, userId), this.keys.presenceView(nsp, userId), now);
      // Decided now (1) or earlier by a caller that may have died before announcing (2): the
      // entry stays due until the announcement is done, so that a crash loses nothing.
      if (code === 1 || code === 2) out.push({ nsp, userId, status: 'offline', lastSeen: Number(lastSeen), version: v, due: { member, score } });
      else if (code === 0) await this.r.dueSettle(this.keys.presenceDue(), member, score);
    }
    return out;
  }

  async announce(t: Transition, payload: PresenceEntry): Promise<boolean> {
    this.check();
    // The adapter's own stream entry for a broadcast to the presence room: every pod delivers it
    // (and recovering clients replay it), exactly as if a pod had broadcast it.
    const fields = adapterBroadcastFields(ANNOUNCER_UID, t.nsp, [presenceRoom(t.userId)], 'presence', payload);
    const id = await this.r.presenceAnnounce(this.keys.adapterStream(), this.keys.presenceAnnounced(t.nsp, t.userId), t.version, t.status, this.opts.streamMaxLen, ANNOUNCED_TTL_MS, ...fields);
    return id !== null;
  }

  async settle(t: Transition): Promise<void> {
    if (!t.due) return;
    await this.r.presenceSettle(this.keys.presence(t.nsp, t.userId), t.version);
    await this.r.dueSettle(this.keys.presenceDue(), t.due.member, t.due.score);
  }

  async get(nsp: string, userIds: string[]): Promise<PresenceEntry[]> {
    this.check();
    if (!userIds.length) return [];
    const views = this.keys.presenceViews(nsp, userIds);
    // One MGET of small strings: for 1,000 users about a quarter of the cost of reading 1,000
    // hashes in a script. On a cluster the keys span slots: auto-pipelining batches the GETs
    // per node.
    const rows = this.r.isCluster ? await Promise.all(views.map((k) => this.r.get(k))) : await this.r.mget(views);
    return userIds.map((userId, i) => entry(userId, rows[i]));
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

  /** Announces a transition (once) and records it in the online count; false when it was skipped. */
  async announce(t: Transition): Promise<boolean> {
    const payload: PresenceEntry = { userId: t.userId, status: t.status, lastSeen: t.lastSeen };
    let sent = true;
    if (this.store.announce) sent = await this.store.announce(t, payload);
    else await broadcast(this.io.of(t.nsp), { rooms: [presenceRoom(t.userId)] }, 'presence', payload);
    if (sent) this.opts.metrics.presenceTransitions.inc({ kind: t.status });
    // Versioned, so recording again after a retried announcement changes nothing.
    await this.store.recordOnline(t).catch((e) => this.opts.logger.debug({ err: (e as Error).message }, 'online count update failed'));
    return sent;
  }

  /**
   * Connects of this pod still being recorded, by namespace and socket id. A socket that goes
   * away at once must not be removed before it is recorded: on a Redis Cluster the commands of
   * the two go to different nodes and could cross, leaving a socket that never disconnects.
   */
  private connecting = new Map<string, Promise<unknown>>();

  async connected(nsp: string, userId: string, sid: string): Promise<void> {
    const k = `${nsp}\n${sid}`;
    const p = this.store.connect(nsp, userId, sid, this.opts.pod, Date.now());
    this.connecting.set(k, p);
    try {
      const t = await p;
      if (t) await this.announce(t);
    } finally {
      if (this.connecting.get(k) === p) this.connecting.delete(k);
    }
  }

  async disconnected(nsp: string, userId: string, sid: string, pod = this.opts.pod, deadline?: number): Promise<void> {
    const recording = this.connecting.get(`${nsp}\n${sid}`);
    if (recording) await recording.catch(() => undefined);
    const now = Date.now();
    await this.store.disconnect(nsp, userId, sid, pod, now, deadline ?? now + this.opts.graceMs);
  }

  /** Decides and announces every offline whose grace period is over. */
  async sweep(): Promise<number> {
    let n = 0;
    // Bounded: a pass that cannot settle its entries (Redis trouble) ends and the next one retries.
    for (let pass = 0; pass < 50; pass++) {
      const ts = await this.store.finalizeDue(Date.now(), 200);
      for (const t of ts) {
        if (await this.announce(t)) n++;
        await this.store.settle?.(t);
      }
      if (ts.length < 200) return n;
    }
    return n;
  }

  /** Removes every socket a dead pod held; their offlines are announced by the sweep. */
  async reapPod(pod: string, deadline: number): Promise<number> {
    const sockets = await this.store.podSockets(pod);
    for (const s of sockets) await this.disconnected(s.nsp, s.userId, s.sid, pod, deadline);
    if (sockets.length) this.opts.metrics.reapedSockets.inc(sockets.length);
    return sockets.length;
  }
}
