/** Presence per (namespace, user): the engine-specific part; each method is one atomic transition. */

export type Status = 'online' | 'offline';

/** One user's presence as clients see it. */
export interface PresenceEntry {
  userId: string;
  status: Status;
  lastSeen: number | null;
}

/** A transition to announce to the subscribers of `presence:<userId>` in `nsp`. */
export interface Transition {
  nsp: string;
  userId: string;
  status: Status;
  lastSeen: number;
  version: number;
  /** The due-set entry this offline was decided from (Redis): settled once it is announced. */
  due?: { member: string; score: string };
}

/** The engine-specific part of presence; each method is one atomic transition. */
export interface PresenceStore {
  connect(nsp: string, userId: string, sid: string, pod: string, now: number): Promise<Transition | null>;
  /** Removes a socket; when it was the user's last, offline becomes pending until `deadline`. */
  disconnect(nsp: string, userId: string, sid: string, pod: string, now: number, deadline: number): Promise<void>;
  /**
   * Decides every pending offline whose deadline passed; returns the transitions to announce,
   * including ones decided earlier by a caller that died before announcing them.
   */
  finalizeDue(now: number, limit: number): Promise<Transition[]>;
  /**
   * Publishes a transition to the subscribers on every pod, at most once per version and never
   * after a newer one (a retried or overtaken announcement is skipped); false when skipped.
   * Stores without it are announced with a plain broadcast.
   */
  announce?(t: Transition, payload: PresenceEntry): Promise<boolean>;
  /** Called once a transition from finalizeDue is announced: it no longer needs to be. */
  settle?(t: Transition): Promise<void>;
  get(nsp: string, userIds: string[]): Promise<PresenceEntry[]>;
  /** The pod a socket is recorded on in its user's presence (null: not recorded). */
  socketPod(nsp: string, userId: string, sid: string): Promise<string | null>;
  /** The sockets a pod holds: what the reaper removes when the pod dies. */
  podSockets(pod: string): Promise<Array<{ nsp: string; sid: string; userId: string }>>;
  /** Records an announced transition in the namespace's online count. */
  recordOnline(t: Transition): Promise<void>;
  /** Online users per namespace. */
  onlineCounts(): Promise<Map<string, number>>;
}

/** The prefix of presence rooms. */
export const PRESENCE_PREFIX = 'presence:';

/** The room a subscriber of `userId`'s presence joins. */
export function presenceRoom(userId: string): string {
  return `${PRESENCE_PREFIX}${userId}`;
}
