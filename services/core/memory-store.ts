import type { PodInfo, RoomChange, RoomMember, Store } from './store';

/** The single-node engine's store: the same semantics as the Redis store, in process memory. */
export class MemoryStore implements Store {
  private rooms = new Map<string, { sockets: Map<string, { userId: string; pod: string; parked?: boolean }>; users: Map<string, number> }>();
  /** Parked memberships by "nsp\nsid": the rooms and the end of their grace period. */
  private parked = new Map<string, { pod: string; rooms: string[]; deadline: number }>();
  private podMap = new Map<string, PodInfo>();

  private room(nsp: string, room: string) {
    const k = `${nsp}\n${room}`;
    let r = this.rooms.get(k);
    if (!r) {
      r = { sockets: new Map(), users: new Map() };
      this.rooms.set(k, r);
    }
    return { k, r };
  }

  async roomJoin(nsp: string, room: string, sid: string, userId: string, pod: string): Promise<RoomChange> {
    const { r } = this.room(nsp, room);
    const prev = r.sockets.get(sid);
    r.sockets.set(sid, { userId, pod });
    let changed = false;
    if (!prev) {
      const n = (r.users.get(userId) ?? 0) + 1;
      r.users.set(userId, n);
      changed = n === 1;
    }
    return { changed, members: r.users.size };
  }

  async roomLeave(nsp: string, room: string, sid: string, pod: string): Promise<RoomChange> {
    const { k, r } = this.room(nsp, room);
    const prev = r.sockets.get(sid);
    if (!prev || prev.pod !== pod) return { changed: false, members: r.users.size };
    r.sockets.delete(sid);
    const n = (r.users.get(prev.userId) ?? 1) - 1;
    let changed = false;
    if (n <= 0) {
      r.users.delete(prev.userId);
      changed = true;
    } else r.users.set(prev.userId, n);
    if (r.sockets.size === 0) this.rooms.delete(k);
    return { changed, members: r.users.size, userId: prev.userId };
  }

  async parkRooms(nsp: string, sid: string, pod: string, rooms: string[], deadline: number): Promise<void> {
    const parked: string[] = [];
    for (const room of rooms) {
      const m = this.rooms.get(`${nsp}\n${room}`)?.sockets.get(sid);
      if (m && m.pod === pod) {
        m.parked = true;
        parked.push(room);
      }
    }
    if (parked.length) this.parked.set(`${nsp}\n${sid}`, { pod, rooms: parked, deadline });
  }

  /** Removes the memberships still parked at their deadline; returns the user-left each owes. */
  async leaveDueParked(now: number): Promise<Array<{ nsp: string; room: string; userId: string }>> {
    const out: Array<{ nsp: string; room: string; userId: string }> = [];
    for (const [k, p] of this.parked) {
      if (p.deadline > now) continue;
      this.parked.delete(k);
      const [nsp, sid] = k.split('\n');
      for (const room of p.rooms) {
        if (!this.rooms.get(`${nsp}\n${room}`)?.sockets.get(sid)?.parked) continue; // back (recovered) or gone
        const change = await this.roomLeave(nsp, room, sid, p.pod);
        if (change.changed && change.userId) out.push({ nsp, room, userId: change.userId });
      }
    }
    return out;
  }

  async roomMembers(nsp: string, room: string): Promise<RoomMember[]> {
    const r = this.rooms.get(`${nsp}\n${room}`);
    if (!r) return [];
    return [...r.users].map(([userId, sockets]) => ({ userId, sockets }));
  }

  async heartbeat(info: PodInfo): Promise<boolean> {
    this.podMap.set(info.id, info);
    return false;
  }

  async markReaped(): Promise<number | null> {
    return null; // a single node never reaps itself
  }

  async forgetPod(pod: string): Promise<void> {
    this.podMap.delete(pod);
  }

  async pods(): Promise<PodInfo[]> {
    return [...this.podMap.values()];
  }

  async removePod(pod: string): Promise<void> {
    this.podMap.delete(pod);
  }

  available(): boolean {
    return true;
  }
}
