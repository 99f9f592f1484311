import type { Keys } from './keys';
import { isRedisDown, UnavailableError } from './errors';
import type { RedisClient } from './redis';
import type { PodInfo, RoomChange, RoomMember, Store } from './store';

type Scripted = RedisClient & {
  roomJoin(k1: string, k2: string, sid: string, userId: string, pod: string): Promise<[number, number]>;
  roomLeave(k1: string, k2: string, sid: string, pod: string): Promise<[number, number, string | null]>;
  roomPark(k: string, sid: string, pod: string, deadline: number): Promise<number>;
  podHeartbeat(k: string, pod: string, json: string, registered: string): Promise<number>;
  podMarkReaped(k: string, pod: string, cutoff: number): Promise<string | null>;
  podForget(k: string, pod: string): Promise<number>;
};

/** The clustered engine's store: room membership and heartbeats in Redis, each transition one Lua script. */
export class RedisStore implements Store {
  private r: Scripted;
  constructor(client: RedisClient, private keys: Keys) {
    this.r = client as Scripted;
  }

  available(): boolean {
    return this.r.status === 'ready';
  }

  private check(): void {
    if (!this.available()) throw new UnavailableError();
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    try {
      return await fn();
    } catch (e) {
      if (e instanceof UnavailableError) throw e;
      if (isRedisDown(e) || !this.available()) throw new UnavailableError();
      throw e;
    }
  }

  async roomJoin(nsp: string, room: string, sid: string, userId: string, pod: string): Promise<RoomChange> {
    const k = this.keys.room(nsp, room);
    const [first, members] = await this.run(() => this.r.roomJoin(k.sockets, k.users, sid, userId, pod));
    await this.run(() => this.r.hset(this.keys.podRooms(pod), `${nsp}\n${room}\n${sid}`, userId));
    return { changed: first === 1, members };
  }

  async roomLeave(nsp: string, room: string, sid: string, pod: string): Promise<RoomChange> {
    const k = this.keys.room(nsp, room);
    const [last, members, userId] = await this.run(() => this.r.roomLeave(k.sockets, k.users, sid, pod));
    await this.run(() => this.r.hdel(this.keys.podRooms(pod), `${nsp}\n${room}\n${sid}`));
    return { changed: last === 1, members, userId: userId ?? undefined };
  }

  async parkRooms(nsp: string, sid: string, pod: string, rooms: string[], deadline: number): Promise<void> {
    if (!rooms.length) return;
    // All written in this tick, the due entry first: a sweeper anywhere decides even if this
    // process dies now, and a recovery of the socket on this pod (a later tick) can only reach
    // Redis after the parking, so it always unparks.
    await this.run(() =>
      Promise.all([
        this.r.zadd(this.keys.roomLeaveDue(), deadline, `${pod}\n${nsp}\n${sid}\n${rooms.join(',')}`),
        ...rooms.map((room) => this.r.roomPark(this.keys.room(nsp, room).sockets, sid, pod, deadline)),
      ]),
    );
  }

  async roomMembers(nsp: string, room: string): Promise<RoomMember[]> {
    const k = this.keys.room(nsp, room);
    const h = await this.run(() => this.r.hgetall(k.users));
    return Object.entries(h).map(([userId, n]) => ({ userId, sockets: Number(n) }));
  }

  /** Every room membership recorded for a pod: { nsp, room, sid, userId }. */
  async podRoomEntries(pod: string): Promise<Array<{ nsp: string; room: string; sid: string; userId: string }>> {
    const h = await this.run(() => this.r.hgetall(this.keys.podRooms(pod)));
    return Object.entries(h).map(([f, userId]) => {
      const [nsp, room, sid] = f.split('\n');
      return { nsp, room, sid, userId };
    });
  }

  /** The pod a room membership is recorded on now, or null when the socket is not in the room. */
  async socketPod(nsp: string, room: string, sid: string): Promise<string | null> {
    const v = await this.run(() => this.r.hget(this.keys.room(nsp, room).sockets, sid));
    return v === null ? null : v.slice(v.indexOf('\n') + 1);
  }

  /** Drops a pod's index entry for a membership another pod took over. */
  async forgetPodRoom(pod: string, nsp: string, room: string, sid: string): Promise<void> {
    await this.run(() => this.r.hdel(this.keys.podRooms(pod), `${nsp}\n${room}\n${sid}`));
  }

  async heartbeat(info: PodInfo, registeredBefore: boolean): Promise<boolean> {
    const r = await this.run(() => this.r.podHeartbeat(this.keys.pods(), info.id, JSON.stringify(info), registeredBefore ? '1' : '0'));
    return r === 1;
  }

  async markReaped(pod: string, cutoff: number): Promise<number | null> {
    const r = await this.run(() => this.r.podMarkReaped(this.keys.pods(), pod, cutoff));
    return r === null ? null : Number(r);
  }

  async forgetPod(pod: string): Promise<void> {
    await this.run(() => this.r.podForget(this.keys.pods(), pod));
  }

  async pods(): Promise<PodInfo[]> {
    const h = await this.run(() => this.r.hgetall(this.keys.pods()));
    const out: PodInfo[] = [];
    for (const v of Object.values(h)) {
      try {
        out.push(JSON.parse(v) as PodInfo);
      } catch {
        /* a corrupt entry is skipped; the next heartbeat rewrites it */
      }
    }
    return out;
  }

  async removePod(pod: string): Promise<void> {
    await this.run(() => this.r.hdel(this.keys.pods(), pod));
  }
}
