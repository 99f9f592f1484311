import http from 'http';
import { Server, Socket } from 'socket.io';
import { AuthError, createAuthenticator, Principal } from '../core/auth';
import type { Config } from '../core/config';
import { broadcast, createEngine, Engine } from '../core/engine';
import { UnavailableError } from '../core/errors';
import { userRoom } from '../core/keys';
import type { Logger } from '../core/logger';
import { createMetrics, Metrics, nsLabel } from '../core/metrics';
import { adminHandlers, answerClusterRequests } from './admin';
import { armOutboundBound, boundOutboundBuffers } from './backpressure';
import type { GatewayContext } from './context';
import { Ack, Handler, invoke } from './events';
import { KeyedLimiter, TokenBucket } from './rate-limit';
import { announceLeave, clientRooms, recordJoin, roomHandlers } from './rooms';
import { reapPod, sweepParkedRooms } from '../core/reaper';
import { Presence } from '../core/presence';
import { presenceHandlers } from './presence-events';
import { inboxHandlers, replayInbox } from './inbox-events';
import { publishRoute } from '../core/publish';
import { demoRoutes } from './demo';
import { healthRoute, listen, metricsRoute, router } from '../core/http';
import { inSpan, SpanKind, SpanStatusCode } from '../core/telemetry';
import { closeRecoveryGap } from './recovery-gap';
import { refuseUnknownNamespaces } from './unknown-namespace';

/** A socket's event token bucket (a symbol: it never travels in the recovery session). */
const BUCKET = Symbol('bucket');

export interface Gateway {
  ctx: GatewayContext;
  io: Server;
  http: http.Server;
  metricsHttp: http.Server;
  start(): Promise<{ port: number; metricsPort: number }>;
  /** Graceful shutdown in ARCHITECTURE.md rule 5 order. */
  stop(): Promise<void>;
  ready(): boolean;
}

/** Wires a gateway: HTTP + Socket.IO, auth, namespaces, events, backpressure, heartbeats, shutdown. */
export function createGateway(cfg: Config, logger: Logger, metrics: Metrics = createMetrics(), extraHandlers: Record<string, Handler> = {}): Gateway {
  const engine: Engine = createEngine(cfg, logger, metrics);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    path: '/socket.io/',
    transports: cfg.transports as ('polling' | 'websocket')[],
    maxHttpBufferSize: cfg.maxHttpBufferSize,
    cors: { origin: cfg.corsOrigins.includes('*') ? true : cfg.corsOrigins, credentials: true },
    connectionStateRecovery: { maxDisconnectionDuration: cfg.recoveryWindowMs, skipMiddlewares: false },
    serveClient: true,
  });
  engine.attach(io);
  closeRecoveryGap(io);
  refuseUnknownNamespaces(io, metrics);
  boundOutboundBuffers(io, cfg.outboundSoftBytes, cfg.outboundMaxBytes, metrics, () => logger.warn('slow consumer cut: outbound buffer above OUTBOUND_BUFFER_MAX_BYTES'));
  const presence = new Presence(engine.presence, io, { pod: cfg.podName, graceMs: cfg.presenceGraceMs, logger, metrics });

  let draining = false;
  let started = false;
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    p.finally(() => inflight.delete(p)).catch(() => undefined);
    return p;
  };

  const ctx: GatewayContext = {
    cfg,
    logger,
    metrics,
    engine,
    io,
    requireAvailable() {
      if (!engine.available()) throw new UnavailableError();
    },
    persistSession(socket) {
      engine.persistSession({ sid: socket.id, pid: (socket as unknown as { pid?: string }).pid, rooms: [...socket.rooms], data: socket.data });
    },
    draining: () => draining,
  };

  const authenticate = createAuthenticator(cfg);
  const connectLimiter = new KeyedLimiter(cfg.connectRatePerSecond, Math.max(1, cfg.connectRatePerSecond * 2));
  let connectionCount = 0;

  const refuse = (next: (err?: Error) => void, e: AuthError) => {
    metrics.authFailures.inc({ reason: e.reason });
    const err = new Error(e.code) as Error & { data: unknown };
    err.data = { code: e.code, message: e.message };
    next(err);
  };

  /** Handshake middleware shared by every namespace: limits, then the token. */
  const authMiddleware = (check?: (p: Principal, socket: Socket) => void) => (socket: Socket, next: (err?: Error) => void) =>
    void inSpan('socket.io handshake', { kind: SpanKind.SERVER, attributes: { 'socket.io.namespace': socket.nsp.name } }, async (span) =>
      handshake(socket, check, (err) => {
        if (err) span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
        next(err);
      }),
    );

  const handshake = async (socket: Socket, check: ((p: Principal, socket: Socket) => void) | undefined, next: (err?: Error) => void) => {
    try {
      const addr = clientAddress(socket, cfg.trustProxyHops);
      if (!connectLimiter.take(addr)) {
        metrics.rateLimited.inc({ scope: 'connect' });
        throw new AuthError('rate_limited', 'too many connection attempts, retry later');
      }
      if (cfg.maxConnections > 0 && connectionCount >= cfg.maxConnections) throw new AuthError('overloaded', 'this pod is at its connection limit, retry later');
      const auth = socket.handshake.auth as Record<string, unknown>;
      if (typeof auth?.pid === 'string' && typeof auth?.offset === 'string') metrics.recoveryAttempts.inc();
      const principal = await authenticate(auth);
      // The token is not needed any more: do not keep it in memory for the life of the socket.
      if (auth && typeof auth === 'object') delete auth.token;
      check?.(principal, socket);
      socket.data.principal = principal;
      next();
    } catch (e) {
      if (e instanceof AuthError) return refuse(next, e);
      logger.error({ err: (e as Error).message }, 'handshake failed');
      refuse(next, new AuthError('unauthorized', 'authentication failed', 'error'));
    }
  };

  const workspaceCheck = (p: Principal, socket: Socket) => {
    const id = cfg.workspacePattern.exec(socket.nsp.name)?.[1] ?? socket.nsp.name;
    if (!p.workspaces.includes(id)) throw new AuthError('forbidden', `your token does not grant workspace "${id}"`, 'workspace');
  };
  const adminCheck = (p: Principal) => {
    if (!p.roles.includes('admin')) throw new AuthError('forbidden', 'the admin namespace needs role "admin"', 'role');
  };

  const clientHandlers: Record<string, Handler> = { ...roomHandlers, ...presenceHandlers, ...inboxHandlers, ...extraHandlers };

  /** Events whose ack is not answered yet, per connection: a draining pod closes a connection once it answered them. */
  const unanswered = new WeakMap<object, number>();
  let moving = false;
  const closeConn = (s: Socket) => (s.client as unknown as { conn: { close(): void } }).conn.close();

  /**
   * One dispatcher per namespace kind, shared by every socket (`this` is the socket): rate limit,
   * unknown-event filter, then the handler. Nothing per socket but its token bucket, so an idle
   * connection costs little memory.
   */
  const dispatcher = (handlers: Record<string, Handler>) =>
    function dispatch(this: Socket, event: unknown, ...rest: unknown[]): void {
      const socket = this;
      const last = rest.length - 1;
      const ack = typeof rest[last] === 'function' ? (rest[last] as Ack) : undefined;
      const st = socket as unknown as { [BUCKET]?: TokenBucket };
      const bucket = (st[BUCKET] ??= new TokenBucket(cfg.rateLimitPerSecond, cfg.rateLimitBurst));
      const handler = typeof event === 'string' && Object.prototype.hasOwnProperty.call(handlers, event) ? handlers[event] : undefined;
      if (!bucket.take()) {
        metrics.rateLimited.inc({ scope: 'event' });
        metrics.eventsReceived.inc({ event: handler ? (event as string) : 'unknown', outcome: 'rate_limited' });
        if (ack) {
          metrics.errors.inc({ code: 'rate_limited' });
          ack({ ok: false, error: { code: 'rate_limited', message: `more than ${cfg.rateLimitPerSecond} events per second` } });
        } else metrics.eventsDropped.inc({ reason: 'rate_limited' });
        return;
      }
      if (!handler) {
        metrics.eventsReceived.inc({ event: 'unknown', outcome: 'bad_request' });
        if (ack) {
          metrics.errors.inc({ code: 'bad_request' });
          ack({ ok: false, error: { code: 'bad_request', message: `unknown event "${String(event).slice(0, 64)}"` } });
        } else metrics.eventsDropped.inc({ reason: 'unknown_event' });
        return;
      }
      if (ack) {
        // Count the answer this event owes: while draining, the connection is closed only once it
        // went out, so a client never loses the ack of an event this pod processed.
        const conn = socket.client;
        unanswered.set(conn, (unanswered.get(conn) ?? 0) + 1);
        let answered = false;
        rest[last] = (body: unknown) => {
          ack(body);
          if (answered) return;
          answered = true;
          const n = (unanswered.get(conn) ?? 1) - 1;
          unanswered.set(conn, n);
          if (moving && n === 0) closeConn(socket);
        };
      }
      invoke(socket, event as string, rest, metrics, logger, (...args) => handler(ctx, socket, ...args));
    };
  const dispatchClient = dispatcher(clientHandlers);
  const dispatchAdmin = dispatcher(adminHandlers);

  /**
   * Disconnect reasons after which the client may come back with its session (Socket.IO's own
   * list): the connection dropped, the client did not leave.
   */
  const RECOVERABLE = new Set(['transport error', 'transport close', 'forced close', 'ping timeout', 'server shutting down', 'forced server close']);
  /** Rooms a socket was in, captured while it is disconnecting (Socket.IO empties them before `disconnect`). */
  const ROOMS = Symbol('rooms');
  function onDisconnecting(this: Socket): void {
    (this as unknown as { [ROOMS]?: string[] })[ROOMS] = clientRooms(this);
  }
  function onDisconnect(this: Socket, reason: string): void {
    const socket = this;
    const label = nsLabel(socket.nsp.name);
    connectionCount--;
    metrics.connections.dec({ nsp: label });
    metrics.disconnects.inc({ nsp: label, reason });
    // While draining, memberships stay for the pod that recovers the socket; leftovers are reaped at the end.
    if (draining || socket.nsp.name === '/admin') return;
    const userId = (socket.data.principal as Principal).userId;
    track(presence.disconnected(socket.nsp.name, userId, socket.id)).catch((e) => logger.debug({ err: (e as Error).message, sid: socket.id }, 'presence disconnect failed'));
    const rooms = (socket as unknown as { [ROOMS]?: string[] })[ROOMS] ?? [];
    if (!rooms.length) return;
    if (RECOVERABLE.has(reason) && cfg.presenceGraceMs > 0) {
      // The connection dropped and may come back (recovered) within the grace period, like
      // presence: the memberships stay, parked, so the rooms see no user-left/user-joined blip.
      track(engine.store.parkRooms(socket.nsp.name, socket.id, cfg.podName, rooms, Date.now() + cfg.presenceGraceMs)).catch((e) => logger.debug({ err: (e as Error).message, sid: socket.id }, 'parking memberships on disconnect failed'));
      return;
    }
    for (const room of rooms) {
      track(announceLeave(ctx, socket, room, userId)).catch((e) => logger.debug({ err: (e as Error).message, sid: socket.id }, 'leave on disconnect failed'));
    }
  }

  const onConnection = (socket: Socket, admin: boolean) => {
    const p = socket.data.principal as Principal;
    const label = nsLabel(socket.nsp.name);
    connectionCount++;
    metrics.connections.inc({ nsp: label });
    metrics.connects.inc({ nsp: label, recovered: String(socket.recovered) });
    if (socket.recovered) metrics.recoverySuccesses.inc();
    armOutboundBound(socket);
    socket.join(userRoom(p.userId));
    socket.onAny(admin ? dispatchAdmin : dispatchClient);
    socket.on('disconnecting', onDisconnecting);
    socket.on('disconnect', onDisconnect);
    if (admin) return;

    track(presence.connected(socket.nsp.name, p.userId, socket.id)).catch((e) => logger.debug({ err: (e as Error).message, sid: socket.id }, 'presence connect failed'));
    if (socket.recovered) {
      // The rooms came back with the session: record them under this pod.
      for (const room of clientRooms(socket)) {
        track(recordJoin(ctx, socket, room, p.userId)).catch((e) => logger.debug({ err: (e as Error).message }, 're-join after recovery failed'));
      }
    } else {
      // Routed through the adapter so the client holds a stream offset from the start (recovery needs one).
      broadcast(socket.nsp, { rooms: [socket.id] }, 'session', { userId: p.userId, recovered: false }).catch(() => undefined);
    }
    replayInbox(ctx, socket).catch((e) => {
      metrics.redisErrors.inc({ op: 'inbox_replay' });
      logger.debug({ err: (e as Error).message, sid: socket.id }, 'inbox replay failed; the client gets it on its next connect');
    });
    ctx.persistSession(socket);
  };

  io.of('/').use(authMiddleware()).on('connection', (s) => onConnection(s, false));
  io.of(cfg.workspacePattern).use(authMiddleware(workspaceCheck)).on('connection', (s) => onConnection(s, false));
  io.of('/admin').use(authMiddleware(adminCheck)).on('connection', (s) => onConnection(s, true));
  answerClusterRequests(ctx);

  const ready = () => started && !draining && engine.available();

  const health = healthRoute({ ready, draining: () => draining, redis: () => engine.available() }, metrics);
  const outbox = engine.outbox(io);
  const onHttpError = (e: Error) => logger.error({ err: e.message }, 'http handler failed');
  const publicRoutes = router([health, publishRoute(cfg, outbox, metrics, logger), demoRoutes(cfg)], onHttpError);
  httpServer.on('request', (req, res) => {
    if (!(req.url ?? '').startsWith('/socket.io/')) publicRoutes(req, res); // Socket.IO answers those
  });
  const metricsHttp = http.createServer(router([health, metricsRoute(metrics, ready)], onHttpError));

  let heartbeatTimer: NodeJS.Timeout | undefined;
  let sessionTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let trimTimer: NodeJS.Timeout | undefined;
  let registered = false;
  const closeAll = () => {
    for (const nsp of io._nsps.values()) for (const s of nsp.sockets.values()) (s.client as unknown as { conn: { close(): void } }).conn.close();
  };
  const heartbeat = async () => {
    try {
      if (!engine.available()) return;
      const reaped = await engine.store.heartbeat({ id: cfg.podName, connections: connectionCount, lastHeartbeat: Date.now() }, registered);
      registered = true;
      if (reaped && !draining) {
        // The cluster gave this pod up for dead (it was paused or cut off): its sockets' state is
        // gone, so they reconnect and register afresh instead of lingering as ghosts.
        logger.warn('this pod was reaped while unresponsive; reconnecting its clients');
        closeAll();
      }
    } catch (e) {
      metrics.redisErrors.inc({ op: 'heartbeat' });
      logger.debug({ err: (e as Error).message }, 'heartbeat failed');
    }
  };
  const refreshSessions = () => {
    for (const nsp of io._nsps.values()) for (const s of nsp.sockets.values()) ctx.persistSession(s);
  };

  return {
    ctx,
    io,
    http: httpServer,
    metricsHttp,
    ready,
    async start() {
      const metricsPort = await listen(metricsHttp, cfg.metricsPort, cfg.host);
      await engine.ready().catch((e) => logger.warn({ err: (e as Error).message }, 'starting before Redis is ready; /readyz fails until it is'));
      const port = await listen(httpServer, cfg.port, cfg.host);
      started = true;
      await heartbeat();
      heartbeatTimer = setInterval(() => void heartbeat(), cfg.heartbeatIntervalMs).unref();
      if (engine.kind === 'redis') sessionTimer = setInterval(refreshSessions, Math.max(1000, Math.floor(cfg.recoveryWindowMs / 3))).unref();
      let sweeping = false;
      sweepTimer = setInterval(() => {
        if (sweeping || !engine.available()) return;
        sweeping = true;
        presence
          .sweep()
          .catch((e) => logger.debug({ err: (e as Error).message }, 'presence sweep failed'))
          .then(() => sweepParkedRooms(engine, io, { streamMaxLen: cfg.adapterStreamMaxLen, logger }))
          .catch((e) => logger.debug({ err: (e as Error).message }, 'parked memberships sweep failed'))
          .finally(() => (sweeping = false));
      }, Math.max(50, Math.min(500, Math.floor(cfg.presenceGraceMs / 4) || 50))).unref();
      // On a single node nobody else enforces inbox retention by age (the worker does on Redis).
      if (engine.kind === 'memory') trimTimer = setInterval(() => void engine.inbox.trimByAge(Date.now()).then((n) => n && metrics.retentionTrims.inc(n)), Math.max(1000, Math.min(60000, Math.floor(cfg.inboxMaxAgeMs / 10)))).unref();
      logger.info({ port, metricsPort, engine: engine.kind, auth: cfg.authMode }, 'gateway listening');
      return { port, metricsPort };
    },
    async stop() {
      if (draining) return;
      draining = true;
      metrics.ready.set(0);
      logger.info({ delayMs: cfg.shutdownDelayMs }, 'draining: readiness fails, waiting for the ingress to notice');
      await sleep(cfg.shutdownDelayMs);
      const deadline = Date.now() + cfg.drainTimeoutMs;
      // Tell every client to reconnect elsewhere (a transport close: clients reconnect by
      // themselves and recover their session on another pod), then stop taking connections.
      // The listener stays open until then: a long-polling client needs its next request to
      // reach this pod to get its last answers and the close.
      refreshSessions();
      // A connection with events still being handled is closed once it has answered them (bounded).
      moving = true;
      const owing = () => [...io._nsps.values()].flatMap((nsp) => [...nsp.sockets.values()]).filter((s) => unanswered.get(s.client));
      for (const nsp of io._nsps.values()) for (const s of nsp.sockets.values()) if (!unanswered.get(s.client)) closeConn(s);
      const answerBy = Math.min(deadline, Date.now() + 2000);
      while (Date.now() < answerBy && owing().length) await sleep(20);
      closeAll();
      httpServer.close();
      while (Date.now() < deadline && (connectionCount > 0 || inflight.size > 0)) await sleep(50);
      await Promise.race([Promise.allSettled([...inflight]), sleep(Math.max(0, deadline - Date.now()))]);
      // Memberships no other pod took over within the drain time are removed and announced.
      if (engine.kind === 'redis') {
        try {
          await reapPod(engine, io, cfg.podName, { waitUntil: deadline, logger, metrics, streamMaxLen: cfg.adapterStreamMaxLen });
          await presence.reapPod(cfg.podName, Date.now() + cfg.presenceGraceMs);
          await engine.store.removePod(cfg.podName);
        } catch (e) {
          logger.warn({ err: (e as Error).message }, 'could not clean up memberships at shutdown; the reaper will');
        }
      }
      clearInterval(heartbeatTimer);
      clearInterval(sessionTimer);
      clearInterval(sweepTimer);
      clearInterval(trimTimer);
      io.close();
      await new Promise<void>((r) => metricsHttp.close(() => r()));
      await engine.close();
      logger.info('gateway stopped');
    },
  };
}

/**
 * The client's address for the handshake limit: the TCP peer, or, behind `hops` trusted proxies
 * that append to X-Forwarded-For, the entry they appended (entries further left are the client's
 * own say and could be forged).
 */
export function clientAddress(socket: Pick<Socket, 'handshake'>, hops: number): string {
  if (hops <= 0) return socket.handshake.address;
  const xff = String(socket.handshake.headers['x-forwarded-for'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return xff[xff.length - hops] ?? xff[0] ?? socket.handshake.address;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
