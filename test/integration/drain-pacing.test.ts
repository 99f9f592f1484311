import { closeClients, RunningGateway, uniquePrefix, until } from '../helpers/cluster';
import { HttpBalancer, startHttpBalancer } from '../helpers/http-balancer';
import { startRedis, TestRedis } from '../helpers/redis';
import { arm, clients, delivery, gateway, peak, SENDER, sleep, traffic } from './moving-shared';

// The paced drain (DRAIN_SPREAD_PERCENT, drain.ts): on SIGTERM a gateway closes its connections in
// batches spread over that share of DRAIN_TIMEOUT_MS instead of all at once, so the pod that takes
// them sees the reconnects at a rate. Measured on what the clients see: when they were told to
// move (here, in one process, the taking pod's handshake rate is bounded by the shared CPU either
// way: test/e2e/rolling.test.ts measures it with real processes). Both ways: 0 lost, no flap.

jest.setTimeout(120000);

const CLIENTS = 60;
const DRAIN_TIMEOUT_MS = 2000;

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  closeClients();
  await redis?.stop().catch(() => undefined);
});

describe.each([
  ['paced (DRAIN_SPREAD_PERCENT=50: over 1 s)', 50],
  ['all at once (DRAIN_SPREAD_PERCENT=0)', 0],
])('drain of a gateway holding 60 clients, %s', (_name, spread) => {
  let gws: Array<RunningGateway & { stop(): Promise<void> }> = [];
  let lb: HttpBalancer;
  afterAll(async () => {
    closeClients();
    await lb?.close();
    await Promise.all(gws.map((g) => g.stop()));
  });

  test('the moves spread as configured; every client recovers on the other pod; 0 lost, no flap', async () => {
    const prefix = uniquePrefix();
    const env = { REBALANCE_ENABLED: 'false', DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS), DRAIN_SPREAD_PERCENT: String(spread) };
    gws = [await gateway(redis.url, prefix, 'a', env), await gateway(redis.url, prefix, 'b', env)];
    lb = await startHttpBalancer([gws[0].port]);
    const all = await clients(lb.url, prefix, CLIENTS, 6, (i) => (i < 6 && i % 2 === 0 ? SENDER : {}));
    arm(all);
    const t = traffic([all[0], all[2], all[4]]);
    await sleep(300);
    lb.setBackends([gws[1].port]); // the balancer took the draining pod out
    const t0 = Date.now();
    await gws[0].stop();
    const stopMs = Date.now() - t0;
    await until(() => all.every((x) => x.socket.connected), 20000, 'every client back');
    await sleep(500);
    await t.stop();
    const [lost, dup] = await delivery(all, t.acked);
    const moved = all.flatMap((x) => x.disconnectedAt);
    const back = all.flatMap((x) => x.reconnectedAt);
    const figures = {
      stopMs,
      movesOverMs: Math.max(...moved) - Math.min(...moved),
      peakMovesPer250ms: peak(moved, 250),
      backOverMs: Math.max(...back) - Math.min(...back),
      acked: t.acked.length,
    };
    console.log(`drain spread ${spread}%: ${JSON.stringify(figures)}`);
    expect(moved).toHaveLength(CLIENTS);
    expect(all.flatMap((x) => x.connects.slice(1)).every(Boolean)).toBe(true);
    expect({ lost, dup, failed: t.failed }).toEqual({ lost: 0, dup: 0, failed: [] });
    expect(all.flatMap((x) => x.flaps)).toEqual([]);
    if (spread > 0) {
      const spreadMs = (DRAIN_TIMEOUT_MS * spread) / 100;
      expect(figures.movesOverMs).toBeGreaterThanOrEqual(0.7 * spreadMs);
      expect(figures.movesOverMs).toBeLessThanOrEqual(spreadMs + 500);
      // 10 batches of 6 over 1 s: about 15 per 250 ms, never the whole pod at once
      expect(figures.peakMovesPer250ms).toBeLessThanOrEqual(CLIENTS / 2);
    } else {
      expect(figures.movesOverMs).toBeLessThan(250);
      expect(figures.peakMovesPer250ms).toBe(CLIENTS);
    }
  });
});
