/** Shared state of the gateways: room membership in distinct users and pod heartbeats. */
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

export interface PodInfo {
  id: string;
  connections: number;
  lastHeartbeat: number;
}

/** The engine-specific state store; the in-memory and Redis engines implement it identically. */
export interface Store {
  roomJoin(nsp: string, room: string, sid: string, userId: string, pod: string): Promise<RoomChange>;
  /** Removes the socket only while it is recorded on `pod`: a socket recovered on another pod meanwhile stays. */
  roomLeave(nsp: string, room: string, sid: string, pod: string): Promise<RoomChange>;
  roomMembers(nsp: string, room: string): Promise<RoomMember[]>;
  /**
   * A socket's connection dropped and may come back (recovered, same id) before `deadline`: its
   * memberships in `rooms` stay, parked, so the rooms see no user-left/user-joined for the blip.
   * A re-join (roomJoin with the same id, on any pod) unparks one; what is still parked at the
   * deadline is removed by the sweep (services/core/reaper.ts, sweepParkedRooms), which announces
   * each user-left once.
   */
  parkRooms(nsp: string, sid: string, pod: string, rooms: string[], deadline: number): Promise<void>;
  /** Writes a heartbeat; true when this pod had registered before and was reaped meanwhile. */
  heartbeat(info: PodInfo, registeredBefore: boolean): Promise<boolean>;
  pods(): Promise<PodInfo[]>;
  /** Marks a pod silent since before `cutoff` as reaped; its last heartbeat, or null when it is alive. */
  markReaped(pod: string, cutoff: number): Promise<number | null>;
  /** Removes a reaped pod's entry (unless it came back). */
  forgetPod(pod: string): Promise<void>;
  removePod(pod: string): Promise<void>;
  /** True when the store can serve requests now. */
  available(): boolean;
}
