import type { Server } from 'socket.io';
import type { Engine } from '../core/engine';
import type { Config } from '../core/platform/config';
import type { Logger } from '../core/platform/logger';
import type { Metrics } from '../core/platform/metrics';
import type { Presence } from '../core/presence/presence';
import { reapPod } from '../core/rooms/reaper';

/**
 * One reaper pass: a gateway silent for 3 heartbeat intervals is marked reaped (so it cannot
 * come back with stale sockets), its room memberships and sockets are removed, then its entry.
 * Every step is idempotent: a reaper killed half-way is finished by the next pass, here or on
 * another worker, and the transitions are announced once because the scripts decide them once.
 * Returns the sockets and memberships removed.
 */
export async function reapSilentPods(deps: {
  engine: Engine;
  io: Server;
  presence: Presence;
  cfg: Config;
  logger: Logger;
  metrics: Metrics;
}): Promise<number> {
  const { engine, io, presence, cfg, logger, metrics } = deps;
  if (!engine.available()) return 0;
  const pods = await engine.pods.pods();
  const now = Date.now();
  const silentFor = cfg.heartbeatIntervalMs * 3;
  let oldest = 0;
  let n = 0;
  for (const p of pods) {
    const age = now - p.lastHeartbeat;
    const lastHeartbeat = age > silentFor || p.reaped ? await engine.pods.markReaped(p.id, now - silentFor) : null;
    if (lastHeartbeat === null) {
      oldest = Math.max(oldest, age);
      continue;
    }
    // Offline is due a grace period after the moment the pod was known dead.
    const deadline = Math.max(now, lastHeartbeat + silentFor + cfg.presenceGraceMs);
    n += await reapPod(engine, io, p.id, { logger, metrics });
    n += await presence.reapPod(p.id, deadline);
    await engine.pods.forgetPod(p.id);
    logger.info({ pod: p.id, lastHeartbeat }, 'reaped a silent gateway pod');
  }
  metrics.heartbeatAge.set(oldest / 1000);
  return n;
}
