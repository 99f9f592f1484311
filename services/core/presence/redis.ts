import type { Cluster, Redis } from 'ioredis';
import type { Announcer } from '../adapter/announcer';
import { UnavailableError } from '../platform/errors';
import type { RedisClient } from '../redis/client';
import type { Keys } from '../redis/keys';
import { PresenceConnectCode, PresenceFinalizeCode } from '../redis/scripts';
import { presenceRoom, type PresenceEntry, type PresenceStore, type Transition } from './store';

/** A lookup row from a presence view, "<online|offline>:<lastSeen ms>" (null: never seen). */
function entry(userId: string, view: string | null): PresenceEntry {
  if (!view) return { userId, status: 'offline', lastSeen: null };
  const sep = view.indexOf(':');
  const lastSeen = view.slice(sep + 1);
  return { userId, status: view.startsWith('online') ? 'online' : 'offline', lastSeen: lastSeen ? Number(lastSeen) : null };
}

/**
 * Presence in Redis, per (namespace, user): a hash (sockets, pending offline, version) and a
 * view string (status and lastSeen, what lookups read) under one hash tag; one Lua script per
 * transition updates both.
 */
export class RedisPresence implements PresenceStore {
  constructor(
    private r: RedisClient,
    private keys: Keys,
    private announcer: Announcer,
  ) {}

  private check(): void {
    if (this.r.status !== 'ready') throw new UnavailableError();
  }

  async connect(nsp: string, userId: string, sid: string, pod: string, now: number): Promise<Transition | null> {
    this.check();
    await this.r.hset(this.keys.podSockets(pod), `${nsp}\n${sid}`, userId);
    const [t, v, lastSeen] = await this.r.presenceConnect(
      this.keys.presence(nsp, userId),
      this.keys.presenceView(nsp, userId),
      sid,
      pod,
      now,
    );
    return t === PresenceConnectCode.BecameOnline ? { nsp, userId, status: 'online', lastSeen: Number(lastSeen), version: v } : null;
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
      if (code === PresenceFinalizeCode.BecameOffline || code === PresenceFinalizeCode.DecidedEarlier)
        out.push({ nsp, userId, status: 'offline', lastSeen: Number(lastSeen), version: v, due: { member, score } });
      else if (code === PresenceFinalizeCode.Nothing) await this.r.dueSettle(this.keys.presenceDue(), member, score);
    }
    return out;
  }

  async announce(t: Transition, payload: PresenceEntry): Promise<boolean> {
    this.check();
    // Published to the presence room like any broadcast (every pod with a subscriber delivers it,
    // recovering clients replay it), guarded by version in the same script.
    return this.announcer.versioned(t.nsp, presenceRoom(t.userId), t.userId, t.version, t.status, 'presence', payload);
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

  async socketPod(nsp: string, userId: string, sid: string): Promise<string | null> {
    this.check();
    return this.r.hget(this.keys.presence(nsp, userId), `s:${sid}`);
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
