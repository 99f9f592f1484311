import type { PodInfo, RoomChange, RoomMember, Store } from './store';

/** The single-node engine's store: the same semantics as the Redis store, in process memory. */
export class MemoryStore implements Store {
  private rooms = new Map<string, { sockets: Map<string, { userId: string; pod: string }>; users: Map<string, number> }>();
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
