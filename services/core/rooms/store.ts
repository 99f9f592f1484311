/** Room membership in distinct users, shared by the gateways; the in-memory and Redis engines implement it identically. */

export interface RoomChange {
  /** The user's first socket joined (join) or last socket left (leave). */
  changed: boolean;
  /** Distinct users in the room afterwards. */
  members: number;
  /** On leave: the user whose socket left, when the socket was a member. */
  userId?: string;
}

export interface RoomMember {
  userId: string;
  sockets: number;
}

/** One socket's membership of one room. */
export interface Membership {
  nsp: string;
  room: string;
  sid: string;
}

/** What removing a membership no pod will remove any more (RoomStore#reap) leaves to do. */
export interface Reaped {
  /** The user's last socket left (now or by an earlier caller that died before announcing it): announce user-left once for this nonce. */
  left?: { userId: string; nonce: string };
  /** The pod's index entry for the membership can go (removed, or recorded on another pod now). */
  done: boolean;
}

/** Parked memberships whose grace period ends (RoomStore#parkRooms), as the sweep reads them. */
export interface DueParked {
  pod: string;
  nsp: string;
  sid: string;
  rooms: string[];
  /** End of the grace period (ms). */
  deadline: number;
  /** The store's own handle of the entry (settled or postponed with it). */
  ref: string;
}

export interface RoomStore {
  roomJoin(nsp: string, room: string, sid: string, userId: string, pod: string): Promise<RoomChange>;
  /** Removes the socket only while it is recorded on `pod`: a socket recovered on another pod meanwhile stays. */
  roomLeave(nsp: string, room: string, sid: string, pod: string): Promise<RoomChange>;
  roomMembers(nsp: string, room: string): Promise<RoomMember[]>;
  /**
   * A socket's connection dropped and may come back (recovered, same id) before `deadline`: its
   * memberships in `rooms` stay, parked, so the rooms see no user-left/user-joined for the blip.
   * A re-join (roomJoin with the same id, on any pod) unparks one; what is still parked at the
   * deadline is removed by the sweep (rooms/reaper.ts, sweepParkedRooms), which announces each
   * user-left once.
   */
  parkRooms(nsp: string, sid: string, pod: string, rooms: string[], deadline: number): Promise<void>;
  /** Every membership recorded for a pod (the reaper's index). */
  podMemberships(pod: string): Promise<Membership[]>;
  /** The pod a membership is recorded on now, or null when the socket is not in the room. */
  socketPod(m: Membership): Promise<string | null>;
  /** The user of a membership, or null when the socket is not in the room. */
  memberUser(m: Membership): Promise<string | null>;
  /** The end of a membership's grace period while it is parked (parkRooms), else null. */
  parkedUntil(m: Membership): Promise<number | null>;
  /**
   * Removes a membership recorded on `pod` that no pod will remove any more: unconditionally
   * (`graceEnd` null: a dead pod), or only while parked with a grace period ending by `graceEnd`.
   */
  reap(pod: string, m: Membership, graceEnd: number | null, nonce: string): Promise<Reaped>;
  /** The user-left a reap owed was announced. */
  settleLeft(m: Membership): Promise<void>;
  /** Drops a pod's index entry for a membership (gone, or taken over by another pod). */
  forgetPodMembership(pod: string, m: Membership): Promise<void>;
  /** Parked memberships whose grace period ended by `now`, oldest first. */
  dueParked(now: number, limit: number): Promise<DueParked[]>;
  /** A due entry is decided (unless it was parked again meanwhile). */
  settleParked(d: DueParked): Promise<void>;
  /** A due entry could not be decided (malformed): retried `ms` later. */
  postponeParked(d: DueParked, ms: number): Promise<void>;
}
