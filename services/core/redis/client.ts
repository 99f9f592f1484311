import Redis, { Cluster, RedisOptions } from 'ioredis';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { isRedisDown, UnavailableError } from '../platform/errors';
import { coalesceWrites } from './coalesce';

export type RedisClient = Redis | Cluster;

/**
 * Reconnect delay: exponential from 50 ms, capped at 2 s, never giving up (no spinning, no crash),
 * with full jitter over the upper half so that the pods of a cluster do not all reconnect in
 * lockstep after a Redis restart.
 */
export function retryDelay(times: number, random: () => number = Math.random): number {
  const cap = Math.min(50 * 2 ** Math.min(times, 6), 2000);
  return Math.round(cap / 2 + (random() * cap) / 2);
}

/**
 * Connects to Redis (or a Redis Cluster seed) with settings that degrade instead of crashing.
 * `role` names the connection in logs and metrics. `failFast` clients reject commands at once
 * while disconnected (they answer client acks with `unavailable`); the adapter's clients queue.
 */
export function createRedis(
  url: string,
  opts: { cluster?: boolean; role: string; failFast?: boolean; logger?: Logger; metrics?: Metrics },
): RedisClient {
  const base: RedisOptions = {
    retryStrategy: (times: number) => retryDelay(times),
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
      clusterRetryStrategy: (times: number) => retryDelay(times),
      // Always on for a cluster: with it off, ioredis rejects any command routed to a node
      // connection that is still connecting (its own ready check included), so a new client
      // flaps and fails commands at random. Fail-fast callers check `status === 'ready'` first.
      enableOfflineQueue: true,
      enableAutoPipelining: true,
      redisOptions: { ...base, password: u.password || undefined, username: u.username || undefined },
    });
  } else {
    // (A cluster batches per node already: auto-pipelining.)
    client = coalesceWrites(new Redis(url, base));
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

/**
 * Runs one store operation against a fail-fast client: `unavailable` at once while Redis is not
 * ready, and for an error that means Redis went away mid-command (anything else is a bug and
 * propagates as it is).
 */
export async function guarded<T>(client: RedisClient, fn: () => Promise<T>): Promise<T> {
  if (client.status !== 'ready') throw new UnavailableError();
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UnavailableError) throw e;
    if (isRedisDown(e) || client.status !== 'ready') throw new UnavailableError();
    throw e;
  }
}
