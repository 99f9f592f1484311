import type { Server } from 'socket.io';
import type { Engine } from '../engine';
import type { Config } from '../platform/config';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import type { Presence } from '../presence/presence';
import { reapPod } from '../rooms/reaper';

export interface ReapDeps {
  engine: Engine;
  io: Server;
  presence: Presence;
  cfg: Config;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Removes everything a dead pod incarnation registered, already marked reaped (so it cannot come
 * back with stale sockets): its room memberships, its sockets (their offlines are due a grace
 * period after the moment it was known dead), then its registry entry. Every step is idempotent:
 * a reaper killed half-way is finished by the next pass. Returns the memberships and sockets removed.
 */
export async function reapDeadPod(deps: ReapDeps, pod: string, lastHeartbeat: number, knownDeadAt?: number): Promise<number> {
  const { engine, io, presence, cfg, logger, metrics } = deps;
  // Offline is due a grace period after the moment the pod was known dead.
  const deadAt = knownDeadAt ?? lastHeartbeat + cfg.heartbeatIntervalMs * 3;
  const deadline = Math.max(Date.now(), deadAt + cfg.presenceGraceMs);
  let n = await reapPod(engine, io, pod, { logger, metrics });
  n += await presence.reapPod(pod, deadline);
  await engine.pods.forgetPod(pod);
  logger.info({ pod, lastHeartbeat }, 'reaped a dead gateway pod');
  return n;
}

/**
 * A gateway starting under a name another incarnation used (a container restarted in its pod):
 * that one is dead, so its state is reaped now instead of after the heartbeat timeout.
 */
export async function reapPredecessors(deps: ReapDeps, self: string): Promise<number> {
  const { engine, cfg } = deps;
  let n = 0;
  for (const p of await engine.pods.pods()) {
    if (p.id === self || (p.name ?? p.id) !== cfg.podName) continue;
    const lastHeartbeat = await engine.pods.markReaped(p.id, Date.now() + 1);
    if (lastHeartbeat !== null) n += await reapDeadPod(deps, p.id, lastHeartbeat, Date.now());
  }
  return n;
}
