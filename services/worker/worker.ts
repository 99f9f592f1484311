import http from 'http';
import { Server } from 'socket.io';
import { answerAsNonGateway } from '../core/cluster-rpc';
import type { Config } from '../core/config';
import { createEngine } from '../core/engine';
import type { Logger } from '../core/logger';
import { createMetrics, Metrics } from '../core/metrics';
import { reapPod, sweepParkedRooms } from '../core/reaper';
import { Presence } from '../core/presence';
import { publishRoute } from '../core/publish';
import { createRedis } from '../core/redis';
import { OutboxConsumer } from './outbox-consumer';
import { healthRoute, listen, metricsRoute, router } from '../core/http';

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
 * but no listener, reaps the memberships of gateway pods that stopped heartbeating, and serves
 * health and metrics.
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
  const publish = publishRoute(cfg, engine.outbox(io), metrics, logger);
  let draining = false;
  let started = false;
  let reaping: Promise<number> | undefined;
  const ready = () => started && !draining && engine.available();

  /**
   * One reaper pass: a gateway silent for 3 heartbeat intervals is marked reaped (so it cannot
   * come back with stale sockets), its room memberships and sockets are removed, then its entry.
   * Every step is idempotent: a reaper killed half-way is finished by the next pass, here or on
   * another worker, and the transitions are announced once because the scripts decide them once.
   */
  const reapOnce = async (): Promise<number> => {
    if (!engine.available()) return 0;
    const pods = await engine.store.pods();
    const now = Date.now();
    const silentFor = cfg.heartbeatIntervalMs * 3;
    let oldest = 0;
    let n = 0;
    for (const p of pods) {
      const age = now - p.lastHeartbeat;
      const lastHeartbeat = age > silentFor || (p as { reaped?: boolean }).reaped ? await engine.store.markReaped(p.id, now - silentFor) : null;
      if (lastHeartbeat === null) {
        oldest = Math.max(oldest, age);
        continue;
      }
      // Offline is due a grace period after the moment the pod was known dead.
      const deadline = Math.max(now, lastHeartbeat + silentFor + cfg.presenceGraceMs);
      n += await reapPod(engine, io, p.id, { logger, metrics, streamMaxLen: cfg.adapterStreamMaxLen });
      n += await presence.reapPod(p.id, deadline);
      await engine.store.forgetPod(p.id);
      logger.info({ pod: p.id, lastHeartbeat }, 'reaped a silent gateway pod');
    }
    metrics.heartbeatAge.set(oldest / 1000);
    return n;
  };

  let sweeping = false;
  const sweep = async () => {
    if (sweeping || !engine.available()) return;
    sweeping = true;
    try {
      await presence.sweep();
      const counts = await engine.presence.onlineCounts();
      metrics.onlineUsers.set([...counts.values()].reduce((a, b) => a + b, 0));
    } catch (e) {
      logger.debug({ err: (e as Error).message }, 'presence sweep failed');
    }
    try {
      await sweepParkedRooms(engine, io, { streamMaxLen: cfg.adapterStreamMaxLen, logger });
    } catch (e) {
      logger.debug({ err: (e as Error).message }, 'parked memberships sweep failed');
    } finally {
      sweeping = false;
    }
  };

  const health = healthRoute({ ready, draining: () => draining, redis: () => engine.available() }, metrics);
  const onHttpError = (e: Error) => logger.error({ err: e.message }, 'http handler failed');
  const httpServer = http.createServer(router([health, publish], onHttpError));
  const metricsHttp = http.createServer(router([health, metricsRoute(metrics, ready)], onHttpError));
  let gaugeTimer: NodeJS.Timeout | undefined;
  let trimTimer: NodeJS.Timeout | undefined;
  let timer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  return {
    io,
    ready,
    reapOnce,
    async start() {
      const metricsPort = await listen(metricsHttp, cfg.metricsPort, cfg.host);
      await engine.ready().catch((e) => logger.warn({ err: (e as Error).message }, 'starting before Redis is ready'));
      const port = await listen(httpServer, cfg.port, cfg.host);
      started = true;
      timer = setInterval(() => {
        if (reaping) return;
        reaping = reapOnce()
          .catch((e) => {
            metrics.redisErrors.inc({ op: 'reap' });
            logger.warn({ err: (e as Error).message }, 'reaper pass failed; retrying next interval');
            return 0;
          })
          .finally(() => (reaping = undefined));
      }, Math.max(100, Math.min(1000, Math.floor(cfg.heartbeatIntervalMs / 2)))).unref();
      sweepTimer = setInterval(() => void sweep(), Math.max(50, Math.min(500, Math.floor(cfg.presenceGraceMs / 4) || 50))).unref();
      consumer.start();
      gaugeTimer = setInterval(() => {
        if (engine.available()) consumer.collect().catch((e) => logger.debug({ err: (e as Error).message }, 'queue gauges failed'));
      }, 2000).unref();
      trimTimer = setInterval(() => {
        if (!engine.available()) return;
        engine.inbox
          .trimByAge(Date.now())
          .then((n) => {
            if (n) metrics.retentionTrims.inc(n);
            const d = engine.inbox.lastDepth();
            metrics.inboxDepth.set(d.messages);
            metrics.inboxStreams.set(d.streams);
          })
          .catch((e) => logger.warn({ err: (e as Error).message }, 'inbox retention pass failed'));
      }, Math.max(1000, Math.min(60000, Math.floor(cfg.inboxMaxAgeMs / 10)))).unref();
      logger.info({ port, metricsPort }, 'worker listening');
      return { port, metricsPort };
    },
    async stop() {
      draining = true;
      // Order: stop taking publishes, stop reading the outbox, finish in-flight deliveries and
      // the reaper pass (bounded by DRAIN_TIMEOUT_MS), then close the adapter and Redis.
      httpServer.close();
      clearInterval(timer);
      clearInterval(sweepTimer);
      clearInterval(gaugeTimer);
      clearInterval(trimTimer);
      await consumer.stop(cfg.drainTimeoutMs);
      await Promise.race([reaping, new Promise((r) => setTimeout(r, cfg.drainTimeoutMs))]);
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
