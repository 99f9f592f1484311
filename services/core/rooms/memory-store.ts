import type { DueParked, Membership, Reaped, RoomChange, RoomMember, RoomStore } from './store';

interface Member {
  userId: string;
  pod: string;
  /** End of the grace period while parked. */
  parkedUntil?: number;
}

/** The single-node engine's room store: the same semantics as the Redis store, in process memory. */
export class MemoryRoomStore implements RoomStore {
  private rooms = new Map<string, { sockets: Map<string, Member>; users: Map<string, number> }>();
  /** Parked memberships by "pod\nnsp\nsid": the rooms and the end of their grace period. */
  private parked = new Map<string, { rooms: string[]; deadline: number }>();

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
        m.parkedUntil = Math.max(m.parkedUntil ?? 0, deadline);
        parked.push(room);
      }
    }
    if (parked.length) this.parked.set(`${pod}\n${nsp}\n${sid}`, { rooms: parked, deadline });
  }

  async roomMembers(nsp: string, room: string): Promise<RoomMember[]> {
    const r = this.rooms.get(`${nsp}\n${room}`);
    if (!r) return [];
    return [...r.users].map(([userId, sockets]) => ({ userId, sockets }));
  }

  async podMemberships(pod: string): Promise<Membership[]> {
    const out: Membership[] = [];
    for (const [k, r] of this.rooms) {
      const [nsp, room] = k.split('\n');
      for (const [sid, m] of r.sockets) if (m.pod === pod) out.push({ nsp, room, sid });
    }
    return out;
  }

  async socketPod(m: Membership): Promise<string | null> {
    return this.rooms.get(`${m.nsp}\n${m.room}`)?.sockets.get(m.sid)?.pod ?? null;
  }

  async memberUser(m: Membership): Promise<string | null> {
    return this.rooms.get(`${m.nsp}\n${m.room}`)?.sockets.get(m.sid)?.userId ?? null;
  }

  async parkedUntil(m: Membership): Promise<number | null> {
    return this.rooms.get(`${m.nsp}\n${m.room}`)?.sockets.get(m.sid)?.parkedUntil ?? null;
  }

  async reap(pod: string, m: Membership, graceEnd: number | null, nonce: string): Promise<Reaped> {
    const member = this.rooms.get(`${m.nsp}\n${m.room}`)?.sockets.get(m.sid);
    if (!member || member.pod !== pod) return { done: true };
    // Back (recovered, unparked by its re-join) or parked again until later: it stays for now.
    if (graceEnd !== null && (member.parkedUntil === undefined || member.parkedUntil > graceEnd)) return { done: false };
    const change = await this.roomLeave(m.nsp, m.room, m.sid, pod);
    return { left: change.changed && change.userId ? { userId: change.userId, nonce } : undefined, done: true };
  }

  async settleLeft(): Promise<void> {
    /* nothing is noted in memory: the caller announces at once and cannot die half-way */
  }

  async forgetPodMembership(): Promise<void> {
    /* the membership itself is the index in memory */
  }

  async dueParked(now: number, limit: number): Promise<DueParked[]> {
    const out: DueParked[] = [];
    for (const [k, p] of this.parked) {
      if (out.length >= limit) break;
      if (p.deadline > now) continue;
      const [pod, nsp, sid] = k.split('\n');
      out.push({ pod, nsp, sid, rooms: p.rooms, deadline: p.deadline, ref: k });
    }
    return out;
  }

  async settleParked(d: DueParked): Promise<void> {
    if (this.parked.get(d.ref)?.deadline === d.deadline) this.parked.delete(d.ref);
  }

  async postponeParked(d: DueParked, ms: number): Promise<void> {
    const p = this.parked.get(d.ref);
    if (p) p.deadline = d.deadline + ms;
  }
}
