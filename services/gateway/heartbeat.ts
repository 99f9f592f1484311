import type { PodInfo } from '../core/pods/registry';
import type { GatewayContext } from './context';

/**
 * The pod's heartbeat (its entry in the pod registry, with its connection count, readiness and
 * whether it drains: what the others share the load by, services/gateway/rebalance.ts). When the
 * cluster gave this pod up for dead meanwhile (it was paused or cut off), its sockets' state is
 * gone: `onReaped` reconnects them so they register afresh instead of lingering as ghosts.
 */
export function createHeartbeat(
  ctx: GatewayContext,
  onReaped: () => void,
  identity: () => Pick<PodInfo, 'tag' | 'address' | 'ready' | 'draining'> = () => ({}),
): () => Promise<void> {
  let registered = false;
  return async () => {
    if (!ctx.engine.available()) return;
    try {
      const reaped = await ctx.engine.pods.heartbeat(
        { id: ctx.pod, name: ctx.cfg.podName, connections: ctx.connections(), lastHeartbeat: Date.now(), ...identity() },
        registered,
      );
      registered = true;
      if (reaped && !ctx.draining()) {
        ctx.logger.warn('this pod was reaped while unresponsive; reconnecting its clients');
        onReaped();
      }
    } catch (e) {
      ctx.metrics.redisErrors.inc({ op: 'heartbeat' });
      throw e;
    }
  };
}
