import type http from 'http';
import type { Duplex } from 'stream';
import type { PeriodicTasks } from '../core/platform/periodic';
import { reapPod } from '../core/rooms/reaper';
import { allSockets, closeAll, connectionCandidates } from './connections';
import type { GatewayContext, GatewayState } from './context';
import { closeConnection, type OwedAnswers } from './dispatcher';
import { isHandshake } from './rebalance-http';
import { chooseSpread } from './shed-choice';

/** How long a moving connection may take to answer the events it owes before it is closed anyway. */
const ANSWER_WITHIN_MS = 2000;
/** Period of the batches of a paced drain. */
export const DRAIN_BATCH_MS = 100;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { allSockets, closeAll };

export interface DrainParts {
  ctx: GatewayContext;
  state: GatewayState;
  owed: OwedAnswers;
  tasks: PeriodicTasks;
  httpServer: http.Server;
  metricsHttp: http.Server;
  /** Rewrites every socket's recovery session. */
  refreshSessions(): Promise<void>;
  /** Writes the pod's heartbeat now (it says `draining`: the other pods stop rebalancing while clients land on them). */
  announce?(): Promise<void>;
  /** Turns new Engine.IO sessions away from now on (installSessionGate). */
  closeGate?(): void;
}

const GATE_BODY = JSON.stringify({ error: { code: 'unavailable', message: 'this pod is shutting down; reconnect' } });

/**
 * Once a drain starts moving connections, new Engine.IO sessions are answered 503 (a polling
 * handshake, a websocket without `sid`): a client moved off this pod that reaches it again (a
 * balancer that has not noticed the failed readiness yet, a TCP proxy without health checks)
 * reconnects elsewhere, as socket.io-client does by itself after a failed attempt, instead of being
 * moved a second time by a later batch. Requests of existing sessions go on. Call it last (it goes
 * in front of the other listeners); the result closes the gate.
 */
export function installSessionGate(server: http.Server, path: string): () => void {
  let closed = false;
  const refuse = (req: http.IncomingMessage) => closed && isHandshake(req.url, path);
  const onRequest = server.listeners('request') as http.RequestListener[];
  server.removeAllListeners('request');
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!refuse(req)) for (const l of onRequest) l.call(server, req, res);
    else res.writeHead(503, { 'content-type': 'application/json', connection: 'close' }).end(GATE_BODY);
  });
  type UpgradeListener = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  const onUpgrade = server.listeners('upgrade') as UpgradeListener[];
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!refuse(req)) for (const l of onUpgrade) l.call(server, req, socket, head);
    else {
      socket.on('error', () => undefined);
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${GATE_BODY.length}\r\nConnection: close\r\n\r\n${GATE_BODY}`,
      );
    }
  });
  return () => (closed = true);
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

function failReadiness({ ctx, state, announce }: DrainParts): void {
  state.draining = true;
  ctx.metrics.ready.set(0);
  void announce?.().catch(() => undefined);
  ctx.logger.info({ delayMs: ctx.cfg.shutdownDelayMs }, 'draining: readiness fails, waiting for the ingress to notice');
}

/**
 * Tells every client to reconnect elsewhere (a transport close: clients reconnect by themselves
 * and recover their session on another pod): in batches spread over DRAIN_SPREAD_PERCENT of the
 * drain time, then whatever is left, then it stops taking connections. The listener stays open
 * until then: a long-polling client needs its next request to reach this pod to get its last
 * answers and the close.
 */
async function moveConnections({ ctx, owed, httpServer, refreshSessions, closeGate }: DrainParts, deadline: number): Promise<void> {
  await refreshSessions().catch(() => undefined);
  closeGate?.();
  const spreadMs = Math.floor((ctx.cfg.drainTimeoutMs * ctx.cfg.drainSpreadPercent) / 100);
  await movePaced(ctx, owed, Math.min(deadline, Date.now() + spreadMs));
  owed.startMoving();
  for (const s of allSockets(ctx.io)) if (!owed.owes(s)) closeConnection(s);
  const answerBy = Math.min(deadline, Date.now() + ANSWER_WITHIN_MS);
  while (Date.now() < answerBy && allSockets(ctx.io).some((s) => owed.owes(s))) await sleep(20);
  closeAll(ctx.io);
  httpServer.close();
}

/**
 * The paced part: every DRAIN_BATCH_MS an equal share of the connections still here (spread over
 * users and rooms, shed-choice.ts), so that the other pods take the reconnects at a rate instead of
 * all at once; the last batch at `until`. A connection that owes answers closes once it answered.
 */
async function movePaced(ctx: GatewayContext, owed: OwedAnswers, until: number): Promise<void> {
  if (until - Date.now() < 2 * DRAIN_BATCH_MS) return;
  const moved = new WeakSet<object>();
  const left = () => connectionCandidates(ctx.io, (s) => moved.has(s.client) || owed.owes(s));
  ctx.logger.info({ connections: left().length, spreadMs: until - Date.now() }, 'draining: moving connections in batches');
  for (;;) {
    const candidates = left();
    if (!candidates.length) return;
    const batchesLeft = Math.max(1, Math.ceil((until - Date.now()) / DRAIN_BATCH_MS));
    const sockets = candidates.reduce((n, c) => n + c.sockets, 0);
    for (const c of chooseSpread(candidates, Math.ceil(sockets / batchesLeft), { now: Date.now(), minAgeMs: 0 })) {
      moved.add(c.key.client);
      owed.move(c.key);
    }
    if (batchesLeft <= 1) return;
    await sleep(DRAIN_BATCH_MS);
  }
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
