import type http from 'http';
import type { Server, Socket } from 'socket.io';
import type { PeriodicTasks } from '../core/platform/periodic';
import { reapPod } from '../core/rooms/reaper';
import type { GatewayContext, GatewayState } from './context';
import { closeConnection, type OwedAnswers } from './dispatcher';

/** How long a moving connection may take to answer the events it owes before it is closed anyway. */
const ANSWER_WITHIN_MS = 2000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Every socket of the pod, all namespaces. */
export function allSockets(io: Server): Socket[] {
  return [...io._nsps.values()].flatMap((nsp) => [...nsp.sockets.values()]);
}

/** Closes every connection of the pod: its clients reconnect (elsewhere) and recover. */
export function closeAll(io: Server): void {
  for (const s of allSockets(io)) closeConnection(s);
}

export interface DrainParts {
  ctx: GatewayContext;
  state: GatewayState;
  owed: OwedAnswers;
  tasks: PeriodicTasks;
  httpServer: http.Server;
  metricsHttp: http.Server;
  /** Rewrites every socket's recovery session. */
  refreshSessions(): Promise<void>;
}

/**
 * The graceful shutdown, in ARCHITECTURE.md rule 5 order: readiness fails, the ingress gets time
 * to notice, the sockets are moved (told to reconnect elsewhere once they owe no answer), in-flight
 * work finishes, memberships nobody took over are handed to the reaper's logic, then Redis closes.
 * Everything after the ingress delay is bounded by DRAIN_TIMEOUT_MS.
 */
export async function drain(p: DrainParts): Promise<void> {
  const { ctx } = p;
  failReadiness(p);
  await sleep(ctx.cfg.shutdownDelayMs);
  const deadline = Date.now() + ctx.cfg.drainTimeoutMs;
  await moveConnections(p, deadline);
  await finishInflight(p, deadline);
  await handOverMemberships(p, deadline);
  await p.tasks.stop();
  ctx.io.close();
  await new Promise<void>((r) => p.metricsHttp.close(() => r()));
  await ctx.engine.close();
  ctx.logger.info('gateway stopped');
}

function failReadiness({ ctx, state }: DrainParts): void {
  state.draining = true;
  ctx.metrics.ready.set(0);
  ctx.logger.info({ delayMs: ctx.cfg.shutdownDelayMs }, 'draining: readiness fails, waiting for the ingress to notice');
}

/**
 * Tells every client to reconnect elsewhere (a transport close: clients reconnect by themselves
 * and recover their session on another pod), then stops taking connections. The listener stays
 * open until then: a long-polling client needs its next request to reach this pod to get its
 * last answers and the close.
 */
async function moveConnections({ ctx, owed, httpServer, refreshSessions }: DrainParts, deadline: number): Promise<void> {
  await refreshSessions().catch(() => undefined);
  owed.startMoving();
  for (const s of allSockets(ctx.io)) if (!owed.owes(s)) closeConnection(s);
  const answerBy = Math.min(deadline, Date.now() + ANSWER_WITHIN_MS);
  while (Date.now() < answerBy && allSockets(ctx.io).some((s) => owed.owes(s))) await sleep(20);
  closeAll(ctx.io);
  httpServer.close();
}

/** Waits for the disconnects to be handled and the background writes to end (bounded). */
async function finishInflight({ state }: DrainParts, deadline: number): Promise<void> {
  while (Date.now() < deadline && (state.connections > 0 || state.inflight.size > 0)) await sleep(50);
  await Promise.race([Promise.allSettled([...state.inflight]), sleep(Math.max(0, deadline - Date.now()))]);
}

/** Memberships no other pod took over within the drain time are removed and announced; presence follows. */
async function handOverMemberships({ ctx }: DrainParts, deadline: number): Promise<void> {
  const { engine, cfg, logger, metrics } = ctx;
  if (engine.kind !== 'redis') return;
  try {
    await reapPod(engine, ctx.io, ctx.pod, { waitUntil: deadline, logger, metrics });
    await ctx.presence.reapPod(ctx.pod, Date.now() + cfg.presenceGraceMs);
    await engine.pods.removePod(ctx.pod);
  } catch (e) {
    logger.warn({ err: (e as Error).message }, 'could not clean up memberships at shutdown; the reaper will');
  }
}
