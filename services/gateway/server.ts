import type http from 'http';
import { Server, type Socket } from 'socket.io';
import { createEngine } from '../core/engine';
import { reapPredecessors } from '../core/pods/reap';
import { incarnation } from '../core/pods/registry';
import type { Config } from '../core/platform/config';
import { createHttpServer, healthRoute, listen, metricsRoute, router, serveUpgradesAsHttp, socketIoUpgrade } from '../core/platform/http';
import type { Logger } from '../core/platform/logger';
import { createMetrics, Metrics } from '../core/platform/metrics';
import { PeriodicTasks, periods } from '../core/platform/periodic';
import { publishRoute } from '../core/outbox/api';
import { Presence } from '../core/presence/presence';
import { sweepParkedRooms } from '../core/rooms/reaper';
import { adminHandlers, answerClusterRequests } from './admin';
import { boundOutboundBuffers } from './backpressure';
import { createContext, type GatewayContext, type GatewayState } from './context';
import { demoRoutes } from './demo';
import { createDispatcher, OwedAnswers } from './dispatcher';
import { createForwarding } from './forwarding';
import { allSockets, closeAll } from './connections';
import { drain, installSessionGate } from './drain';
import type { Handler } from './events';
import { adminCheck, createHandshake, workspaceCheck } from './handshake';
import { createHeartbeat } from './heartbeat';
import { inboxHandlers } from './inbox-events';
import { createLifecycle } from './lifecycle';
import { presenceHandlers } from './presence-events';
import { wireRebalancing } from './rebalance';
import { reconcile } from './reconcile';
import { installResume } from './resume';
import { roomHandlers } from './rooms';
import { socketServerOptions } from './socket-options';
import { refuseUnknownNamespaces } from './unknown-namespace';

export interface Gateway {
  ctx: GatewayContext;
  io: Server;
  http: http.Server;
  metricsHttp: http.Server;
  start(): Promise<{ port: number; metricsPort: number }>;
  /** Graceful shutdown in ARCHITECTURE.md rule 5 order (drain.ts). */
  stop(): Promise<void>;
  ready(): boolean;
}

/** The namespaces clients may use (`/`, workspaces, `/admin`), each behind its handshake; any other is refused. */
function wireNamespaces(ctx: GatewayContext, onConnection: (s: Socket, admin: boolean) => void): void {
  const { io, cfg, metrics } = ctx;
  const handshake = createHandshake(ctx);
  refuseUnknownNamespaces(io, metrics, handshake.refusalOf);
  installResume(io, ctx, handshake.verify);
  io.of('/')
    .use(handshake.middleware())
    .on('connection', (s) => onConnection(s, false));
  io.of(handshake.matchWorkspace)
    .use(handshake.middleware(workspaceCheck(cfg.workspacePattern)))
    .on('connection', (s) => onConnection(s, false));
  io.of('/admin')
    .use(handshake.middleware(adminCheck))
    .on('connection', (s) => onConnection(s, true));
}

/** Wires a gateway: HTTP + Socket.IO, the engine, namespaces and their handshakes, events, background tasks, shutdown. */
export function createGateway(
  cfg: Config,
  logger: Logger,
  metrics: Metrics = createMetrics(),
  extraHandlers: Record<string, Handler> = {},
): Gateway {
  const engine = createEngine(cfg, logger, metrics);
  const httpServer = createHttpServer(cfg, metrics, { public: true });
  const socketOptions = socketServerOptions(cfg);
  const io = new Server(httpServer, socketOptions);
  // Only Socket.IO's own websocket upgrades reach engine.io; any other upgrade offer (h2c) is served as HTTP/1.1.
  serveUpgradesAsHttp(httpServer, socketIoUpgrade(socketOptions.path));
  // Sticky sessions optional: session ids name this pod, and requests for another pod's session are forwarded there.
  const forwarding = createForwarding(cfg, engine.pods, httpServer, metrics, logger, socketOptions.path);
  io.engine.generateId = () => forwarding.newId();
  engine.attach(io);
  boundOutboundBuffers(io, cfg.outboundSoftBytes, cfg.outboundMaxBytes, metrics, () =>
    logger.warn('slow consumer cut: outbound buffer above OUTBOUND_BUFFER_MAX_BYTES'),
  );
  const pod = incarnation(cfg.podName);
  const presence = new Presence(engine.presence, io, { pod, graceMs: cfg.presenceGraceMs, logger, metrics });
  const state: GatewayState = { draining: false, connections: 0, inflight: new Set() };
  const ctx = createContext({ cfg, pod, logger, metrics, engine, io, presence }, state);

  const owed = new OwedAnswers();
  const dispatcher = createDispatcher(ctx, owed);
  const onConnection = createLifecycle(ctx, state, {
    client: dispatcher({ ...roomHandlers, ...presenceHandlers, ...inboxHandlers, ...extraHandlers }),
    admin: dispatcher(adminHandlers),
  });
  wireNamespaces(ctx, onConnection);
  answerClusterRequests(ctx);

  let started = false;
  const ready = () => started && !state.draining && engine.available();
  const health = healthRoute({ ready, draining: () => state.draining, redis: () => engine.available() }, metrics);
  const onHttpError = (e: Error) => logger.error({ err: e.message }, 'http handler failed');
  const publicRoutes = router([health, publishRoute(cfg, engine.outbox(io), metrics, logger), demoRoutes(cfg)], onHttpError);
  httpServer.on('request', (req, res) => {
    if (!(req.url ?? '').startsWith('/socket.io/')) publicRoutes(req, res); // Socket.IO answers those
  });
  const metricsHttp = createHttpServer(cfg, metrics, { handler: router([health, metricsRoute(metrics, ready)], onHttpError) });

  const tasks = new PeriodicTasks(logger, metrics);
  const identity = () => ({ ...forwarding.identity(), ready: ready(), draining: state.draining });
  const heartbeat = createHeartbeat(ctx, () => closeAll(io), identity);
  const rebalancing = wireRebalancing(ctx, owed, httpServer, socketOptions.path, forwarding.forwarder);
  const closeGate = installSessionGate(httpServer, socketOptions.path);
  const refreshSessions = () => engine.recovery.refresh(allSockets(io));
  const sweep = async () => {
    await presence.sweep().catch((e) => logger.debug({ err: (e as Error).message }, 'presence sweep failed'));
    await sweepParkedRooms(engine, io, { logger });
  };

  return {
    ctx,
    io,
    http: httpServer,
    metricsHttp,
    ready,
    async start() {
      const metricsPort = await listen(metricsHttp, cfg.metricsPort, cfg.host);
      await engine
        .ready()
        .catch((e) => logger.warn({ err: (e as Error).message }, 'starting before Redis is ready; /readyz fails until it is'));
      const port = await listen(httpServer, cfg.port, cfg.host);
      const p = periods(cfg);
      // A predecessor under this pod name (a restarted container) is dead: its state goes now.
      if (engine.kind === 'redis')
        await tasks.runNow('reap-predecessors', () => reapPredecessors({ engine, io, presence, cfg, logger, metrics }, pod));
      // Registered (with the address of its sessions) before it is ready: the others can forward to it from its first client on.
      await tasks.runNow('heartbeat', heartbeat);
      started = true;
      await tasks.runNow('heartbeat', heartbeat); // now as ready: the others count it when they share the load
      tasks.every('heartbeat', p.heartbeatMs, heartbeat);
      rebalancing?.start(tasks);
      tasks.every('pod-directory', p.heartbeatMs, () => forwarding.directory.refresh(), engine.available);
      if (engine.kind === 'redis') {
        tasks.every('session-refresh', p.sessionRefreshMs, refreshSessions);
        tasks.every('reconcile', p.reconcileMs, () => reconcile(ctx), engine.available);
        // After every Redis reconnect: what failed while it was down is set right.
        engine.redis?.on('ready', () => void tasks.runNow('reconcile', () => reconcile(ctx)));
      }
      tasks.every('presence-sweep', p.sweepMs, sweep, engine.available);
      // On a single node nobody else enforces inbox retention by age (the worker does on Redis).
      if (engine.kind === 'memory')
        tasks.every('inbox-retention', p.inboxTrimMs, async () => metrics.retentionTrims.inc(await engine.inbox.trimByAge(Date.now())));
      logger.info({ port, metricsPort, engine: engine.kind, auth: cfg.authMode }, 'gateway listening');
      return { port, metricsPort };
    },
    async stop() {
      if (state.draining) return;
      const announce = () => tasks.runNow('heartbeat', heartbeat);
      await drain({ ctx, state, owed, tasks, httpServer, metricsHttp, refreshSessions, announce, closeGate });
      forwarding.forwarder.close();
    },
  };
}
