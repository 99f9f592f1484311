import http from 'http';
import { AddressInfo } from 'net';
import { Server } from 'socket.io';
import { answerAsNonGateway } from '../core/cluster-rpc';
import type { Config } from '../core/config';
import { createEngine } from '../core/engine';
import type { Logger } from '../core/logger';
import { createMetrics, Metrics } from '../core/metrics';
import { reapPod } from '../core/reaper';

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
  const engine = createEngine(cfg, logger, metrics);
  const io = new Server({ connectionStateRecovery: { maxDisconnectionDuration: cfg.recoveryWindowMs } });
  engine.attach(io);
  io.of('/');
  answerAsNonGateway(io, logger);
  let draining = false;
  let started = false;
  let reaping: Promise<number> | undefined;
  const ready = () => started && !draining && engine.available();

  const reapOnce = async (): Promise<number> => {
    if (!engine.available()) return 0;
    const pods = await engine.store.pods();
    const now = Date.now();
    let oldest = 0;
    let n = 0;
    for (const p of pods) {
      const age = now - p.lastHeartbeat;
      if (age > cfg.heartbeatIntervalMs * 3) {
        n += await reapPod(engine, io, p.id, { logger, metrics });
        await engine.store.removePod(p.id);
      } else oldest = Math.max(oldest, age);
    }
    metrics.heartbeatAge.set(oldest / 1000);
    return n;
  };

  const serve = (req: http.IncomingMessage, res: http.ServerResponse, withMetrics: boolean) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    if (url === '/readyz') {
      const ok = ready();
      metrics.ready.set(ok ? 1 : 0);
      return void res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ok, draining, redis: engine.available() }));
    }
    if (withMetrics && url === '/metrics') {
      metrics.ready.set(ready() ? 1 : 0);
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        (e: Error) => res.writeHead(500).end(e.message),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not_found', message: 'no such route' } }));
  };
  const httpServer = http.createServer((req, res) => serve(req, res, false));
  const metricsHttp = http.createServer((req, res) => serve(req, res, true));
  let timer: NodeJS.Timeout | undefined;
  const listen = (s: http.Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, cfg.host, () => resolve((s.address() as AddressInfo).port));
    });

  return {
    io,
    ready,
    reapOnce,
    async start() {
      const metricsPort = await listen(metricsHttp, cfg.metricsPort);
      await engine.ready().catch((e) => logger.warn({ err: (e as Error).message }, 'starting before Redis is ready'));
      const port = await listen(httpServer, cfg.port);
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
      }, cfg.heartbeatIntervalMs).unref();
      logger.info({ port, metricsPort }, 'worker listening');
      return { port, metricsPort };
    },
    async stop() {
      draining = true;
      clearInterval(timer);
      httpServer.close();
      await Promise.race([reaping, new Promise((r) => setTimeout(r, cfg.drainTimeoutMs))]);
      io.close();
      await new Promise<void>((r) => metricsHttp.close(() => r()));
      await engine.close();
      logger.info('worker stopped');
    },
  };
}
