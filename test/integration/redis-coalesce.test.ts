import Redis from 'ioredis';
import type { Socket } from 'net';
import { coalesceWrites } from '../../services/core/redis/coalesce';
import { startRedis, TestRedis } from '../helpers/redis';

// Commands written in one turn of the event loop leave a Redis connection in one write
// (services/core/redis/coalesce.ts), in order, with their replies matched; on every new
// connection too.

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());

/** Counts the socket's low-level writes (each one syscall). */
function countWrites(client: Redis): { n: number } {
  const stream = (client as unknown as { stream: Socket & { _writev?: unknown; _write: unknown } }).stream;
  const c = { n: 0 };
  for (const m of ['_write', '_writev'] as const) {
    const orig = stream[m] as ((...a: unknown[]) => unknown) | undefined;
    if (!orig) continue;
    stream[m] = function (this: unknown, ...a: unknown[]) {
      c.n++;
      return orig.apply(this, a);
    };
  }
  return c;
}

async function ready(client: Redis): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise((r) => client.once('ready', r));
}

test('twenty commands issued in one turn leave in one write, in order, each with its own reply', async () => {
  const client = coalesceWrites(new Redis(redis.url));
  try {
    await ready(client);
    const writes = countWrites(client);
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? client.get(`k${i - 1}`) : client.set(`k${i}`, `v${i}`))),
    );
    expect(writes.n).toBe(1);
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 ? `v${i - 1}` : 'OK')));
    // A command issued after the turn goes in the next write.
    expect(await client.get('k0')).toBe('v0');
    expect(writes.n).toBe(2);
  } finally {
    client.disconnect();
  }
});

test('a new connection after a drop is coalesced too', async () => {
  const client = coalesceWrites(new Redis(redis.url, { retryStrategy: () => 50 }));
  try {
    await ready(client);
    const first = (client as unknown as { stream: Socket }).stream;
    first.destroy();
    await new Promise((r) => client.once('ready', r));
    expect((client as unknown as { stream: Socket }).stream).not.toBe(first);
    const writes = countWrites(client);
    const replies = await Promise.all(Array.from({ length: 10 }, () => client.ping()));
    expect(replies).toEqual(Array(10).fill('PONG'));
    expect(writes.n).toBe(1);
  } finally {
    client.disconnect();
  }
});
