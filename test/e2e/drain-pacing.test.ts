import { describeLocal, useCluster, type Cluster } from './cluster';
import { ask, closeAll, connectMany, E2EClient, FAST_RECONNECT, sleep, until } from './clients';
import { record, summary } from './results';

// Paced drain (issue #17, item 3): a SIGTERMed gateway moves its connections in batches spread over
// DRAIN_SPREAD_PERCENT of DRAIN_TIMEOUT_MS instead of all at once, so the pods that take them see a
// rate of handshakes, not a wall. The same scenario twice, each on its own local cluster (2
// gateways behind round-robin HAProxy, rebalancing off): 200 clients, about half on each gateway,
// gateway-1 SIGTERMed; its clients reconnect (socket.io-client back-off 100-500 ms, randomized) to
// gateway-2. Measured at the clients: when each moved client was connected again, and from that the
// survivor's peak handshake rate (the most reconnects in any 1 s window, and in any 250 ms window
// x 4). Paced (DRAIN_SPREAD_PERCENT=50 of 8 s) against all at once (0). Both: every moved client
// recovered, none left behind.

jest.setTimeout(180000);

const CLIENTS = 200;
const DRAIN_TIMEOUT_MS = 8000;

type DrainFigures = {
  spreadPercent: number;
  clientsMoved: number;
  firstToLastReconnectMs: number;
  peakHandshakesPerSecond: number;
  peakHandshakesPer250msTimes4: number;
  drainMs: number;
  recovered: number;
};
const results: Record<string, DrainFigures> = {};

/** The most timestamps in any window of `ms` (sliding, starting at each timestamp). */
function peakInWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] >= ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

function scenario(label: string, spreadPercent: number): void {
  describeLocal(`drain of one gateway, DRAIN_SPREAD_PERCENT=${spreadPercent} (${label})`, () => {
    const cluster = useCluster({
      name: `drain-${label}`,
      gateways: 2,
      workers: 1,
      sticky: false,
      gatewayEnv: { DRAIN_SPREAD_PERCENT: spreadPercent, DRAIN_TIMEOUT_MS, SHUTDOWN_DELAY_MS: 1500 },
    });
    afterAll(() => closeAll());

    test('every client of the drained gateway reconnects and recovers on the other one', async () => {
      const c: Cluster = cluster();
      const tag = `${label}-${Date.now().toString(36)}`;
      const clients: E2EClient[] = await connectMany(
        c,
        Array.from({ length: CLIENTS }, (_, i) => `dp-${tag}-u${i}`),
        FAST_RECONNECT,
      );
      for (const [i, cl] of clients.entries())
        expect(await ask(cl.socket, 'join-room', `dp-${tag}-r${i % 10}`)).toMatchObject({ ok: true });
      await sleep(500);
      const [drained] = c.gateways;
      const t0 = Date.now();
      await c.kill(drained, 'SIGTERM');
      const drainMs = Date.now() - t0;
      // Every client back (a disconnect can reach a client after kill() returned), then who moved.
      await sleep(500);
      await until(() => clients.every((cl) => cl.socket.connected), 30000, 'every client connected again');
      const moved = clients.filter((cl) => cl.disconnects.some((d) => d.at >= t0));
      const back = moved.map((cl) => cl.connects.find((k) => k.at >= cl.disconnects.find((d) => d.at >= t0)!.at)!);
      const times = back.map((k) => k.at);
      const figures: DrainFigures = {
        spreadPercent,
        clientsMoved: moved.length,
        firstToLastReconnectMs: Math.max(...times) - Math.min(...times),
        peakHandshakesPerSecond: peakInWindow(times, 1000),
        peakHandshakesPer250msTimes4: 4 * peakInWindow(times, 250),
        drainMs,
        recovered: back.filter((k) => k.recovered).length,
      };
      results[label] = figures;
      record(__filename, `SIGTERM of one of 2 gateways with ${CLIENTS} clients, DRAIN_SPREAD_PERCENT=${spreadPercent}`, figures);

      // A round-robin balancer puts about half of the clients on each gateway.
      expect(moved.length).toBeGreaterThan(CLIENTS / 4);
      expect(figures.recovered).toBe(moved.length);
      expect(clients.every((cl) => cl.socket.connected)).toBe(true);
      expect(clients.every((cl) => cl.connectErrors.length === 0 || cl.socket.connected)).toBe(true);
      const m = await ask(clients[0].socket, 'get-room-members', `dp-${tag}-r0`);
      expect(m).toMatchObject({ ok: true, count: CLIENTS / 10 });
    });
  });
}

scenario('unpaced', 0);
scenario('paced', 50);

describeLocal('paced against unpaced', () => {
  afterAll(() => summary(__filename));
  test("the paced drain lowers the other gateway's peak handshake rate", () => {
    const { paced, unpaced } = results;
    expect(paced).toBeDefined();
    expect(unpaced).toBeDefined();
    const ratio = paced.peakHandshakesPerSecond / paced.clientsMoved / (unpaced.peakHandshakesPerSecond / unpaced.clientsMoved);
    record(__filename, 'peak handshakes per second at the survivor, per moved client: paced / unpaced', {
      ratio: Number(ratio.toFixed(2)),
    });
    // All at once, nearly every moved client is back within one second; paced over 4 s, about a third.
    expect(unpaced.peakHandshakesPerSecond).toBeGreaterThan(0.6 * unpaced.clientsMoved);
    expect(ratio).toBeLessThan(0.6);
    expect(paced.firstToLastReconnectMs).toBeGreaterThan(2000);
  });
});
