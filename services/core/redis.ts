import fs from 'fs';
import path from 'path';
import Redis, { Cluster, RedisOptions } from 'ioredis';
import type { Logger } from './logger';
import type { Metrics } from './metrics';

export type RedisClient = Redis | Cluster;

/** Reconnect delay: exponential from 50 ms, capped at 2 s, never giving up (no spinning, no crash). */
export function retryDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 2000);
}

/**
 * Connects to Redis (or a Redis Cluster seed) with settings that degrade instead of crashing.
 * `role` names the connection in logs and metrics. `failFast` clients reject commands at once
 * while disconnected (they answer client acks with `unavailable`); the adapter's clients queue.
 */
export function createRedis(url: string, opts: { cluster?: boolean; role: string; failFast?: boolean; logger?: Logger; metrics?: Metrics }): RedisClient {
  const base: RedisOptions = {
    retryStrategy: retryDelay,
    maxRetriesPerRequest: opts.failFast ? 0 : 2,
    enableOfflineQueue: !opts.failFast,
    connectionName: `rtg-${opts.role}`,
    lazyConnect: false,
    ...(opts.failFast ? { commandTimeout: 3000 } : {}),
  };
  let client: RedisClient;
  if (opts.cluster) {
    const u = new URL(url);
    client = new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
      clusterRetryStrategy: retryDelay,
      // Always on for a cluster: with it off, ioredis rejects any command routed to a node
      // connection that is still connecting (its own ready check included), so a new client
      // flaps and fails commands at random. Fail-fast callers check `status === 'ready'` first.
      enableOfflineQueue: true,
      enableAutoPipelining: true,
      redisOptions: { ...base, password: u.password || undefined, username: u.username || undefined },
    });
  } else {
    client = new Redis(url, base);
  }
  let lastLog = 0;
  client.on('error', (err: Error) => {
    opts.metrics?.redisErrors.inc({ op: 'connection' });
    const now = Date.now();
    if (now - lastLog > 5000) {
      lastLog = now;
      opts.logger?.warn({ role: opts.role, err: err.message }, 'redis connection error');
    }
  });
  client.on('ready', () => opts.logger?.info({ role: opts.role }, 'redis ready'));
  return client;
}

/** Loads every `services/core/lua/<name>-<numkeys>.lua` as an ioredis command named in camelCase. */
export function defineScripts(client: RedisClient): void {
  const dir = path.join(__dirname, 'lua');
  for (const file of fs.readdirSync(dir)) {
    const m = /^(.*)-(\d+)\.lua$/.exec(file);
    if (!m) continue;
    const name = m[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    client.defineCommand(name, { numberOfKeys: Number(m[2]), lua: fs.readFileSync(path.join(dir, file), 'utf8') });
  }
}

/** Resolves once the client is ready, or rejects after `ms`. */
export function waitReady(client: RedisClient, ms = 10000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis not ready after ${ms} ms (status ${client.status})`));
    }, ms);
    const onReady = () => {
      clearTimeout(t);
      resolve();
    };
    client.once('ready', onReady);
  });
}
