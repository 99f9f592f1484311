import Redis from 'ioredis';
import { startGateways, until } from '../helpers/cluster';
import { startRedis, TestRedis } from '../helpers/redis';
import { describePresence, GRACE } from './presence-shared';

// The suite itself lives in presence-shared.ts so that presence-cluster.test.ts runs the same
// assertions against a Redis Cluster.

describePresence('presence (memory engine)', async () => {
  const c = await startGateways(1, { PRESENCE_GRACE_MS: String(GRACE) });
  return { urls: c.gateways.map((g) => g.url), stop: c.stop };
});

describePresence('presence (redis engine, 3 gateways)', async () => {
  const redis: TestRedis = await startRedis();
  const c = await startGateways(3, { REDIS_URL: redis.url, PRESENCE_GRACE_MS: String(GRACE) });
  const prefix = c.gateways[0].cfg.keyPrefix;
  const r = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  return {
    urls: c.gateways.map((g) => g.url),
    transitions: async (nsp, userId) => Number((await r.hget(`${prefix}:presence:{${nsp}|${userId}}`, 'v')) ?? 0),
    async stop() {
      await c.stop();
      // the adapter's stream pollers close once their blocking XREAD returns: let them, so that
      // no client is left retrying against a stopped server
      await until(async () => !/ flags=[A-Za-z]*b/.test(String(await r.client('LIST'))), 5000, 'no blocked client').catch(() => undefined);
      r.disconnect();
      await redis.stop();
    },
  };
});
