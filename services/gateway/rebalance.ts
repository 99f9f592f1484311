import type http from 'http';
import type { Socket } from 'socket.io';
import type { PeriodicTasks } from '../core/platform/periodic';
import { connectionCandidates } from './connections';
import type { GatewayContext } from './context';
import type { OwedAnswers } from './dispatcher';
import { installRebalanceRouting, type RebalanceRouting } from './rebalance-http';
import { fairShare, RebalancePlanner, steeringTargets, type Plan } from './rebalance-plan';
import { chooseSpread } from './shed-choice';

// Rebalancing (ARCHITECTURE.md, "Rebalancing"): connections stay where they landed, so after a
// scale-out the new pods sit idle while the old ones keep everything. Each gateway reads the
// connection counts of the pods from the registry its heartbeats already write, and a pod above
// its fair share moves the excess away gradually, with the same recoverable close a drain uses:
// the client reconnects through the balancer and recovers its session, rooms, presence and missed
// messages on the pod it lands on; a full pod serves a new session's handshake on a pod below the
// fair share (rebalance-http.ts), so a round-robin balancer sending it back does not undo the move.

/** Period of the shedding ticks (the plan itself is renewed every heartbeat period). */
export const REBALANCE_TICK_MS = 250;

export interface Rebalancing {
  /** Reads the registry and decides (every heartbeat period). */
  observe(): Promise<void>;
  /** Closes what the plan allows now (every REBALANCE_TICK_MS). */
  tick(): void;
  /**
   * Whether to turn away a new Engine.IO handshake that carries the balancer's affinity cookie
   * (a client coming straight back to the pod that moved it): true at most once per connection
   * moved, and only while shedding. Counts it.
   */
  releaseAffinity(): boolean;
  /**
   * The tag of a pod below the fair share to start a new session on instead of this one, while
   * this pod sheds (within that pod's room, steeringTargets), or undefined. Counts it.
   */
  steer(): string | undefined;
  /** The last decision. */
  plan(): Plan;
}

/** The rebalancing of one gateway; `owed` closes a moved connection only once it answered what it owes (dispatcher.ts). */
export function createRebalancing(ctx: GatewayContext, owed: OwedAnswers): Rebalancing {
  const { cfg, metrics, logger } = ctx;
  const planner = new RebalancePlanner({ tolerance: cfg.rebalanceTolerancePercent / 100, ratePercent: cfg.rebalanceRatePercent });
  // Connections closed whose disconnect is not through yet (a polling one closes on its next poll).
  const moving = new WeakSet<object>();
  let lastTick = Date.now();
  let bounces = 0;
  let targets: ReturnType<typeof steeringTargets> = [];
  let lastState = '';

  const log = (plan: Plan) => {
    const state = plan.shed ? 'shedding' : plan.reason;
    if (state === lastState) return;
    lastState = state;
    const fields = { own: ctx.connections(), fair: plan.fair === undefined ? undefined : Math.round(plan.fair), pods: plan.pods };
    if (plan.shed) logger.info({ ...fields, excess: plan.excess, why: plan.why }, 'rebalancing: above the fair share, moving connections');
    else if (plan.reason === 'stalled') logger.warn(fields, 'rebalancing paused: moving connections did not even out the pods');
    else logger.info({ ...fields, reason: plan.reason }, 'rebalancing: holding');
  };

  return {
    async observe() {
      let share: ReturnType<typeof fairShare> | undefined;
      try {
        if (ctx.engine.available()) {
          const pods = await ctx.engine.pods.pods();
          share = fairShare({ self: ctx.pod, own: ctx.connections(), pods, now: Date.now(), heartbeatMs: cfg.heartbeatIntervalMs });
        }
      } catch (e) {
        logger.debug({ err: (e as Error).message }, 'rebalancing: the pod registry could not be read; holding');
      }
      const plan = planner.update(share, ctx.connections(), ctx.draining());
      metrics.rebalanceFairShare.set(plan.fair ?? ctx.connections());
      metrics.rebalanceShedding.set(plan.shed ? 1 : 0);
      if (!plan.shed) bounces = 0;
      targets = plan.shed && share ? steeringTargets(share, ctx.pod) : [];
      log(plan);
    },
    tick() {
      const now = Date.now();
      const dt = now - lastTick;
      lastTick = now;
      if (ctx.draining() || !ctx.engine.available()) return;
      const n = planner.take(ctx.connections(), dt);
      if (n <= 0) return;
      const skip = (s: Socket) => moving.has(s.client) || owed.owes(s);
      // A connection that arrived less than two heartbeats ago is not in the counts yet (maybe one just moved here).
      const chosen = chooseSpread(connectionCandidates(ctx.io, skip), n, { now, minAgeMs: 2 * cfg.heartbeatIntervalMs });
      let sockets = 0;
      for (const c of chosen) {
        moving.add(c.key.client);
        owed.move(c.key);
        sockets += c.sockets;
      }
      planner.shed(sockets);
      metrics.rebalanceCloses.inc(chosen.length);
      bounces += chosen.length;
    },
    releaseAffinity() {
      if (!planner.current.shed || bounces <= 0) return false;
      bounces--;
      metrics.rebalanceAffinityRefusals.inc();
      return true;
    },
    steer() {
      if (!planner.current.shed || ctx.draining()) return undefined;
      let best: (typeof targets)[number] | undefined;
      for (const t of targets) if (t.room > 0 && (!best || t.room > best.room)) best = t;
      if (!best) return undefined;
      best.room--;
      metrics.rebalanceSteered.inc();
      return best.tag;
    },
    plan: () => planner.current,
  };
}

/**
 * A gateway's rebalancing, wired: the routing of handshakes in front of `server`
 * (rebalance-http.ts; `forwarder` starts a session on another pod, forwarding.ts) and, from
 * `start`, its periodic tasks. Undefined when REBALANCE_ENABLED is off or on the memory engine
 * (a single node has no one to share with).
 */
export function wireRebalancing(
  ctx: GatewayContext,
  owed: OwedAnswers,
  server: http.Server,
  path: string,
  forwarder: { handshake: RebalanceRouting['forward'] },
): { rebalancing: Rebalancing; start(tasks: PeriodicTasks): void } | undefined {
  const { cfg, engine } = ctx;
  if (!cfg.rebalanceEnabled || engine.kind !== 'redis') return undefined;
  const rebalancing = createRebalancing(ctx, owed);
  installRebalanceRouting(server, {
    path,
    affinityCookie: cfg.rebalanceAffinityCookie,
    release: rebalancing.releaseAffinity,
    // A forwarded handshake reaches the other pod from this one's address: a per-address connect limit would count them all as one.
    steer: cfg.connectRatePerSecond > 0 ? () => undefined : rebalancing.steer,
    forward: (tag, req, res, local) => forwarder.handshake(tag, req, res, local),
  });
  return {
    rebalancing,
    start(tasks) {
      tasks.every('rebalance-plan', cfg.heartbeatIntervalMs, rebalancing.observe, engine.available);
      tasks.every('rebalance-shed', REBALANCE_TICK_MS, async () => rebalancing.tick(), engine.available);
    },
  };
}
