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
  heartbeat(info: PodInfo): Promise<void>;
  pods(): Promise<PodInfo[]>;
  removePod(pod: string): Promise<void>;
  /** True when the store can serve requests now. */
  available(): boolean;
}
