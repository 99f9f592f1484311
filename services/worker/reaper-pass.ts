import { reapDeadPod, type ReapDeps } from '../core/pods/reap';

/**
 * One reaper pass: a gateway silent for 3 heartbeat intervals is marked reaped (so it cannot
 * come back with stale sockets), its room memberships and sockets are removed, then its entry.
 * Every step is idempotent: a reaper killed half-way is finished by the next pass, here or on
 * another worker, and the transitions are announced once because the scripts decide them once.
 * Returns the sockets and memberships removed.
 */
export async function reapSilentPods(deps: ReapDeps): Promise<number> {
  const { engine, cfg, metrics } = deps;
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
    n += await reapDeadPod(deps, p.id, lastHeartbeat);
  }
  metrics.heartbeatAge.set(oldest / 1000);
  return n;
}
