import type { Keys } from '../redis/keys';
import { guarded, type RedisClient } from '../redis/client';
import { RoomJoinFirst, RoomLeaveLast, RoomReapCode } from '../redis/scripts';
import type { DueParked, Membership, Reaped, RoomChange, RoomMember, RoomStore } from './store';

/** A pod's index entry of a membership: field "nsp\nroom\nsid" of `<prefix>:pod:{pod}:rooms`. */
const field = (m: Membership) => `${m.nsp}\n${m.room}\n${m.sid}`;

/** Room membership in Redis: two hashes per room under one hash tag, each transition one Lua script. */
export class RedisRoomStore implements RoomStore {
  constructor(
    private r: RedisClient,
    private keys: Keys,
  ) {}

  private run<T>(fn: () => Promise<T>): Promise<T> {
    return guarded(this.r, fn);
  }

  async roomJoin(nsp: string, room: string, sid: string, userId: string, pod: string): Promise<RoomChange> {
    const k = this.keys.room(nsp, room);
    const [first, members] = await this.run(() => this.r.roomJoin(k.sockets, k.users, sid, userId, pod));
    await this.run(() => this.r.hset(this.keys.podRooms(pod), field({ nsp, room, sid }), userId));
    return { changed: first === RoomJoinFirst.Yes, members };
  }

  async roomLeave(nsp: string, room: string, sid: string, pod: string): Promise<RoomChange> {
    const k = this.keys.room(nsp, room);
    const [last, members, userId] = await this.run(() => this.r.roomLeave(k.sockets, k.users, sid, pod));
    await this.run(() => this.r.hdel(this.keys.podRooms(pod), field({ nsp, room, sid })));
    return { changed: last === RoomLeaveLast.Yes, members, userId: userId ?? undefined };
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

  async podMemberships(pod: string): Promise<Membership[]> {
    const h = await this.run(() => this.r.hgetall(this.keys.podRooms(pod)));
    return Object.keys(h).map((f) => {
      const [nsp, room, sid] = f.split('\n');
      return { nsp, room, sid };
    });
  }

  async socketPod(m: Membership): Promise<string | null> {
    const v = await this.run(() => this.r.hget(this.keys.room(m.nsp, m.room).sockets, m.sid));
    return v === null ? null : v.slice(v.indexOf('\n') + 1);
  }

  async memberUser(m: Membership): Promise<string | null> {
    const v = await this.run(() => this.r.hget(this.keys.room(m.nsp, m.room).sockets, m.sid));
    return v === null ? null : v.slice(0, v.indexOf('\n'));
  }

  async parkedUntil(m: Membership): Promise<number | null> {
    const v = await this.run(() => this.r.hget(this.keys.room(m.nsp, m.room).sockets, `~parked:${m.sid}`));
    return v === null ? null : Number(v);
  }

  async reap(pod: string, m: Membership, graceEnd: number | null, nonce: string): Promise<Reaped> {
    const k = this.keys.room(m.nsp, m.room);
    const [code, , userId, done, noted] = await this.run(() =>
      this.r.roomReap(k.sockets, k.users, m.sid, pod, graceEnd === null ? '0' : String(graceEnd), nonce),
    );
    const owes = (code === RoomReapCode.LeftNow || code === RoomReapCode.StillOwed) && userId;
    return { left: owes ? { userId, nonce: noted ?? '' } : undefined, done: done === 1 };
  }

  async settleLeft(m: Membership): Promise<void> {
    await this.run(() => this.r.hdel(this.keys.room(m.nsp, m.room).sockets, `~left:${m.sid}`));
  }

  async forgetPodMembership(pod: string, m: Membership): Promise<void> {
    await this.run(() => this.r.hdel(this.keys.podRooms(pod), field(m)));
  }

  async dueParked(now: number, limit: number): Promise<DueParked[]> {
    const due = await this.run(() => this.r.zrangebyscore(this.keys.roomLeaveDue(), '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit));
    const out: DueParked[] = [];
    for (let i = 0; i < due.length; i += 2) {
      const [pod, nsp, sid, rooms] = due[i].split('\n');
      out.push({ pod, nsp, sid, rooms: rooms ? rooms.split(',') : [], deadline: Number(due[i + 1]), ref: `${due[i]}\t${due[i + 1]}` });
    }
    return out;
  }

  async settleParked(d: DueParked): Promise<void> {
    const [member, score] = d.ref.split('\t');
    await this.run(() => this.r.dueSettle(this.keys.roomLeaveDue(), member, score));
  }

  async postponeParked(d: DueParked, ms: number): Promise<void> {
    const [member] = d.ref.split('\t');
    await this.run(() => this.r.zadd(this.keys.roomLeaveDue(), 'XX', d.deadline + ms, member));
  }
}
