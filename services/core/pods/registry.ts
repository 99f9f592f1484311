/** Which gateway pods are alive: their heartbeats. The in-memory and Redis engines implement it identically. */

export interface PodInfo {
  /** The pod's incarnation (its name and a start id): what it registers everything under. */
  id: string;
  /** The pod's name (POD_NAME); a later incarnation under the same name knows this one is dead. */
  name?: string;
  connections: number;
  lastHeartbeat: number;
  /** The prefix of the Engine.IO session ids this pod hands out (a gateway's, per process). */
  tag?: string;
  /** Where the other gateways reach this pod (`http://<ip>:<port>`), to forward a session's requests to it. */
  address?: string;
  /** False while the pod is not ready (starting, Redis down): the others do not count it when they share the load. */
  ready?: boolean;
  /** True once the pod started its graceful shutdown: its clients are moving to the others. */
  draining?: boolean;
  /** Set once a reaper gave the pod up for dead. */
  reaped?: boolean;
}

export interface PodRegistry {
  /** Writes a heartbeat; true when this pod had registered before and was reaped meanwhile. */
  heartbeat(info: PodInfo, registeredBefore: boolean): Promise<boolean>;
  pods(): Promise<PodInfo[]>;
  /** Marks a pod silent since before `cutoff` as reaped; its last heartbeat, or null when it is alive. */
  markReaped(pod: string, cutoff: number): Promise<number | null>;
  /** Removes a reaped pod's entry (unless it came back). */
  forgetPod(pod: string): Promise<void>;
  /** Removes a pod's entry (its own, at the end of a graceful shutdown). */
  removePod(pod: string): Promise<void>;
}

/** A new incarnation of pod `name`: its name and a start id, unique per process start. */
export function incarnation(name: string): string {
  return `${name}.${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, '0')}`;
}
