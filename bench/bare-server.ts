/**
 * Bare Socket.IO baseline for the benchmarks: the same Socket.IO 4.8 server options and the same
 * @socket.io/redis-streams-adapter settings as the gateway (read from the gateway's own config
 * defaults, so they stay in sync), with the minimal equivalent handlers and nothing else:
 * no auth, no validation, no metrics, no backpressure, no membership store.
 *
 *   join-room (room, ack)    -> socket.join(room); ack({ ok: true, room })
 *   message   (payload, ack) -> io.to(payload.roomId).emit('message', payload); ack({ ok: true })
 *   get-presence (ids, ack)  -> one MGET of the ids' presence views under REDIS_KEY_PREFIX (the
 *                               gateway's key and value format, no validation); ack({ ok: true, users })
 *
 * Env: PORT, HOST (127.0.0.1), REDIS_URL (required), REDIS_CLUSTER (true: REDIS_URL is a seed of a
 * Redis Cluster), REDIS_KEY_PREFIX (use a different one from the gateway so the adapter stream is
 * separate). Prints "bare-server ready <port>" once listening
 * with Redis ready; exits on SIGTERM/SIGINT.
 *
 * Diagnostics only (off by default; the fan-out passes BENCH_BARE_FEATURES through): BARE_FEATURES,
 * a comma-separated list of gateway features to add one at a time, to measure what each costs:
 *   als          wrap the room emit in AsyncLocalStorage.run() like the gateway's `origin` store
 *                (in Node 20 this turns on async_hooks for the whole process);
 *   backpressure wrap every connection with the gateway's boundOutboundBuffer (per-packet size
 *                accounting + a prom-client counter);
 *   payload      emit the gateway's message shape { id, userId, text, data, timestamp, room }.
 */
import { AsyncLocalStorage } from 'async_hooks';
import { randomUUID } from 'crypto';
import http from 'http';
import { AddressInfo } from 'net';
import Redis, { Cluster } from 'ioredis';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { loadConfig } from '../services/core/platform/config';
import { Keys } from '../services/core/redis/keys';
import { streamsAdapterOptions } from '../services/core/adapter/broadcast';
import { socketServerOptions } from '../services/gateway/socket-options';

// The gateway's configuration with the same environment: identical option values.
const cfg = loadConfig({ ...process.env, AUTH_MODE: 'insecure' }, 'gateway');
if (!cfg.redisUrl) {
  process.stderr.write('bare-server: REDIS_URL is required\n');
  process.exit(2);
}
const keys = new Keys(process.env.REDIS_KEY_PREFIX || 'bare');

// REDIS_CLUSTER=true (as for the gateway): REDIS_URL is a seed node of a Redis Cluster.
const redis: Redis | Cluster = cfg.redisCluster
  ? new Cluster([{ host: new URL(cfg.redisUrl).hostname, port: Number(new URL(cfg.redisUrl).port || 6379) }], {
      redisOptions: { maxRetriesPerRequest: 2, connectionName: 'bare-adapter' },
    })
  : new Redis(cfg.redisUrl, { maxRetriesPerRequest: 2, connectionName: 'bare-adapter' });
redis.on('error', (e) => process.stderr.write(`bare-server: redis error: ${e.message}\n`));

const httpServer = http.createServer();
const io = new Server(httpServer, { ...socketServerOptions(cfg), adapter: createAdapter(redis, streamsAdapterOptions(keys, cfg)) });

type Ack = (body: unknown) => void;

const features = new Set(
  (process.env.BARE_FEATURES ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);
for (const f of features)
  if (!['als', 'backpressure', 'payload'].includes(f)) process.stderr.write(`bare-server: unknown BARE_FEATURES entry "${f}" ignored\n`);
const als = features.has('als') ? new AsyncLocalStorage<{ ts: number }>() : undefined;
/** The gateway's outbound bound, whichever shape services/gateway/backpressure.ts has (loaded at run time, so a change there cannot break the benchmark build). */
let bindSocket: ((socket: unknown) => void) | undefined;
if (features.has('backpressure')) {
  const bp = require('../services/gateway/backpressure') as Record<string, (...a: unknown[]) => void>;
  const metrics = (require('../services/core/platform/metrics') as { createMetrics(): unknown }).createMetrics();
  const noop = () => undefined;
  if (typeof bp.boundOutboundBuffers === 'function') {
    // Current API: patch once per server, arm per socket.
    bp.boundOutboundBuffers(io, cfg.outboundSoftBytes, cfg.outboundMaxBytes, metrics, noop);
    bindSocket = (socket) => bp.armOutboundBound?.(socket);
  } else if (typeof bp.boundOutboundBuffer === 'function') {
    bindSocket = (socket) => bp.boundOutboundBuffer(socket, cfg.outboundSoftBytes, cfg.outboundMaxBytes, metrics, noop);
  } else {
    process.stderr.write('bare-server: BARE_FEATURES=backpressure: no known export in services/gateway/backpressure; ignored\n');
  }
}

io.on('connection', (socket) => {
  bindSocket?.(socket);
  socket.on('join-room', (room: unknown, ack?: Ack) => {
    if (typeof room === 'string') socket.join(room);
    if (typeof ack === 'function') ack({ ok: true, room });
  });
  socket.on('message', (payload: { roomId?: unknown; text?: unknown; data?: unknown } | undefined, ack?: Ack) => {
    if (payload && typeof payload.roomId === 'string') {
      const room = payload.roomId;
      const out = features.has('payload')
        ? { id: randomUUID(), userId: 'bare-user', text: payload.text, data: payload.data, timestamp: Date.now(), room }
        : payload;
      if (als) als.run({ ts: Date.now() }, () => io.to(room).emit('message', out));
      else io.to(room).emit('message', out);
    }
    if (typeof ack === 'function') ack({ ok: true });
  });
  socket.on('get-presence', async (ids: string[], ack?: Ack) => {
    const head = `${keys.prefix}:presence-view:{${socket.nsp.name}|`;
    const views = await redis.mget(ids.map((id) => `${head}${id}}`));
    const users = ids.map((userId, i) => {
      const v = views[i];
      if (!v) return { userId, status: 'offline', lastSeen: null };
      const sep = v.indexOf(':');
      return { userId, status: v.slice(0, sep), lastSeen: Number(v.slice(sep + 1)) };
    });
    if (typeof ack === 'function') ack({ ok: true, users });
  });
});

const ready = new Promise<void>((resolve) => (redis.status === 'ready' ? resolve() : redis.once('ready', () => resolve())));
void ready.then(() => {
  httpServer.listen(cfg.port, process.env.HOST || '127.0.0.1', () => {
    process.stdout.write(`bare-server ready ${(httpServer.address() as AddressInfo).port}\n`);
  });
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  io.close();
  redis.disconnect();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
