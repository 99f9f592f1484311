import type { PresenceEntry, PresenceStore, Status, Transition } from './store';

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

  async socketPod(nsp: string, userId: string, sid: string): Promise<string | null> {
    return this.users.get(`${nsp}\n${userId}`)?.sockets.get(sid) ?? null;
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
