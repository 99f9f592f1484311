import { Server } from 'socket.io';
import { answerAsNonGateway } from '../core/cluster-rpc';
import { createEngine } from '../core/engine';
import { publishRoute } from '../core/outbox/api';
import type { Config } from '../core/platform/config';
import { createHttpServer, healthRoute, listen, metricsRoute, router } from '../core/platform/http';
import type { Logger } from '../core/platform/logger';
import { createMetrics, Metrics } from '../core/platform/metrics';
import { PeriodicTasks, periods } from '../core/platform/periodic';
import { Presence } from '../core/presence/presence';
import { createRedis } from '../core/redis/client';
import { sweepParkedRooms } from '../core/rooms/reaper';
import { OutboxConsumer } from './outbox-consumer';
import { reapSilentPods } from './reaper-pass';

export interface Worker {
  io: Server;
  start(): Promise<{ port: number; metricsPort: number }>;
  stop(): Promise<void>;
  ready(): boolean;
  /** One reaper pass (exposed for tests). */
  reapOnce(): Promise<number>;
}

/**
 * The worker: holds no sockets; emits into rooms through a Socket.IO server that has the adapter
 * but no listener, drains the outbox, reaps the memberships of gateway pods that stopped
 * heartbeating, sweeps pending offlines, enforces inbox retention, and serves health and metrics.
 */
export function createWorker(cfg: Config, logger: Logger, metrics: Metrics = createMetrics()): Worker {
  if (!cfg.redisUrl) throw new Error('the worker needs REDIS_URL');
  const engine = createEngine(cfg, logger, metrics, { holdsSockets: false });
  const io = new Server({ connectionStateRecovery: { maxDisconnectionDuration: cfg.recoveryWindowMs } });
  engine.attach(io);
  io.of('/');
  answerAsNonGateway(io, logger);
  const presence = new Presence(engine.presence, io, { pod: cfg.podName, graceMs: cfg.presenceGraceMs, logger, metrics });
  const reader = createRedis(cfg.redisUrl, { cluster: cfg.redisCluster, role: 'outbox-reader', failFast: true, logger, metrics });
  const consumer = new OutboxConsumer(engine.redis!, reader, io, engine.inbox, engine.keys, cfg, logger, metrics);
  let draining = false;
  let started = false;
  const ready = () => started && !draining && engine.available();
  const tasks = new PeriodicTasks(logger, metrics);

  const reapOnce = () => reapSilentPods({ engine, io, presence, cfg, logger, metrics });
  const reap = () =>
    reapOnce().catch((e) => {
      metrics.redisErrors.inc({ op: 'reap' });
      logger.warn({ err: (e as Error).message }, 'reaper pass failed; retrying next interval');
    });
  const sweep = async () => {
    try {
      await presence.sweep();
      const counts = await engine.presence.onlineCounts();
      metrics.onlineUsers.set([...counts.values()].reduce((a, b) => a + b, 0));
    } catch (e) {
      logger.debug({ err: (e as Error).message }, 'presence sweep failed');
    }
    await sweepParkedRooms(engine, io, { logger });
  };
  const retention = async () => {
    metrics.retentionTrims.inc(await engine.inbox.trimByAge(Date.now()));
    const d = engine.inbox.lastDepth();
    metrics.inboxDepth.set(d.messages);
    metrics.inboxStreams.set(d.streams);
  };

  const health = healthRoute({ ready, draining: () => draining, redis: () => engine.available() }, metrics);
  const onHttpError = (e: Error) => logger.error({ err: e.message }, 'http handler failed');
  // No upgrade listener on either server: node serves an Upgrade (h2c) offer as the HTTP/1.1 request it also is.
  const publicRoutes = router([health, publishRoute(cfg, engine.outbox(io), metrics, logger)], onHttpError);
  const httpServer = createHttpServer(cfg, metrics, { public: true, handler: publicRoutes });
  const metricsHttp = createHttpServer(cfg, metrics, { handler: router([health, metricsRoute(metrics, ready)], onHttpError) });
  return {
    io,
    ready,
    reapOnce,
    async start() {
      const metricsPort = await listen(metricsHttp, cfg.metricsPort, cfg.host);
      await engine.ready().catch((e) => logger.warn({ err: (e as Error).message }, 'starting before Redis is ready'));
      const port = await listen(httpServer, cfg.port, cfg.host);
      started = true;
      const p = periods(cfg);
      tasks.every('reaper', p.reapMs, reap);
      tasks.every('presence-sweep', p.sweepMs, sweep, engine.available);
      consumer.start();
      tasks.every('queue-gauges', p.gaugesMs, () => consumer.collect(), engine.available);
      tasks.every('inbox-retention', p.inboxTrimMs, retention, engine.available);
      logger.info({ port, metricsPort }, 'worker listening');
      return { port, metricsPort };
    },
    async stop() {
      draining = true;
      // Order: stop taking publishes, stop reading the outbox, finish in-flight deliveries and
      // the reaper pass (bounded by DRAIN_TIMEOUT_MS), then close the adapter and Redis.
      httpServer.close();
      const stopped = tasks.stop(cfg.drainTimeoutMs);
      await consumer.stop(cfg.drainTimeoutMs);
      await stopped;
      reader.disconnect();
      // io.close() assumes an Engine.IO server, which a listener-less Server lacks (it rejects):
      // close the adapters (their stream readers) directly.
      await Promise.allSettled([...io._nsps.values()].map(async (nsp) => nsp.adapter.close()));
      await new Promise<void>((r) => metricsHttp.close(() => r()));
      await engine.close();
      logger.info('worker stopped');
    },
  };
}
