import type { Server } from 'socket.io';
import type { Engine } from '../core/engine';
import type { Config } from '../core/platform/config';
import { UnavailableError } from '../core/platform/errors';
import type { Logger } from '../core/platform/logger';
import type { Metrics } from '../core/platform/metrics';
import type { Presence } from '../core/presence/presence';

/** What the gateway's modules share: configuration, engine, telemetry, and the pod's own state. */
export interface GatewayContext {
  cfg: Config;
  /**
   * This process's incarnation: its pod name and a start id. Everything the pod registers
   * (heartbeat, sockets, memberships) carries it, so a restart under the same name (what
   * Kubernetes does after a crash) is another pod to the cluster, and reaps its predecessor.
   */
  pod: string;
  logger: Logger;
  metrics: Metrics;
  engine: Engine;
  io: Server;
  presence: Presence;
  /** Throws `unavailable` while Redis is down. */
  requireAvailable(): void;
  /** True once SIGTERM started the drain. */
  draining(): boolean;
  /** Sockets connected to this pod now (every namespace). */
  connections(): number;
  /**
   * Runs a background write on a socket's behalf: kept in the in-flight set the drain waits for,
   * and its failure logged at debug with `what` (the client learns nothing of it).
   */
  track(p: Promise<unknown>, what: string, sid?: string): void;
}

/** The pod's own mutable state behind the context. */
export interface GatewayState {
  draining: boolean;
  connections: number;
  inflight: Set<Promise<unknown>>;
}

/** Builds the context of a gateway around its state. */
export function createContext(
  parts: Omit<GatewayContext, 'requireAvailable' | 'draining' | 'connections' | 'track'>,
  state: GatewayState,
): GatewayContext {
  const { engine, logger } = parts;
  return {
    ...parts,
    requireAvailable() {
      if (!engine.available()) throw new UnavailableError();
    },
    draining: () => state.draining,
    connections: () => state.connections,
    track(p, what, sid) {
      state.inflight.add(p);
      p.catch((e) => logger.debug({ err: (e as Error)?.message, sid }, `${what} failed`)).finally(() => state.inflight.delete(p));
    },
  };
}
