import http from 'http';
import type { AddressInfo } from 'net';
import path from 'path';
import { Registry } from 'prom-client';
import { createLogger } from '../../services/core/platform/logger';
import { createMetrics } from '../../services/core/platform/metrics';
import { PodDirectory } from '../../services/core/pods/directory';
import type { PodInfo } from '../../services/core/pods/registry';
import { Forwarder, FORWARDED_HEADER } from '../../services/gateway/forwarding';
import { closeClients, RunningGateway, uniquePrefix, until } from '../helpers/cluster';
import { AFFINITY_COOKIE, HttpBalancer, startHttpBalancer } from '../helpers/http-balancer';
import { freePort, startRedis, TestRedis } from '../helpers/redis';
import { arm, clients, counts, delivery, gateway as startGateway, HB, SENDER, sleep, total, traffic, withinBand } from './moving-shared';

// Rebalancing (ARCHITECTURE.md "Rebalancing"): gateways share the load by the connection counts of
// their heartbeats. A scale-out behind a balancer (round-robin, or cookie affinity with
// REBALANCE_AFFINITY_COOKIE): the full pod moves its excess with recoverable closes, the clients
// recover on the other pods; no acknowledged message lost or duplicated, no user-left/user-joined,
// no presence flap. The off switch, a Redis outage in the middle of it (shedding holds), and a
// steered handshake whose target cannot take it.

jest.setTimeout(120000);

const gateway = (prefix: string, name: string, env: Record<string, string> = {}) => startGateway(redis.url, prefix, name, env);

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  closeClients();
  await redis?.stop().catch(() => undefined);
});

describe('scale-out behind a round-robin balancer', () => {
  let gws: Array<RunningGateway & { stop(): Promise<void> }> = [];
  let lb: HttpBalancer;
  afterEach(async () => {
    closeClients();
    await lb?.close();
    await Promise.all(gws.map((g) => g.stop()));
    gws = [];
  });

  test('1 -> 3 pods under 60 clients: even within the tolerance, 0 lost, 0 duplicated, no user-left, no presence flap', async () => {
    const prefix = uniquePrefix();
    gws.push(await gateway(prefix, 'a'));
    lb = await startHttpBalancer([gws[0].port]);
    const all = await clients(lb.url, prefix, 60, 6, (i) => (i < 6 && i % 2 === 0 ? SENDER : {}));
    arm(all);
    const t = traffic([all[0], all[2], all[4]]);
    await sleep(300);
    gws.push(await gateway(prefix, 'b'), await gateway(prefix, 'c'));
    lb.setBackends(gws.map((g) => g.port));
    const t0 = Date.now();
    await until(() => withinBand(counts(gws)), 30000, `even counts (now ${counts(gws)})`);
    const ms = Date.now() - t0;
    await sleep(1000);
    await t.stop();
    const [lost, dup] = await delivery(all, t.acked);
    const closes = await total(gws, 'realtime_gateway_rebalance_closes_total');
    const steered = await total(gws, 'realtime_gateway_rebalance_steered_handshakes_total');
    console.log(`rebalance 1->3: even in ${ms} ms, counts ${counts(gws)}, closes ${closes}, steered ${steered}, acked ${t.acked.length}`);
    expect(t.acked.length).toBeGreaterThan(20);
    expect(t.failed).toEqual([]);
    expect({ lost, dup }).toEqual({ lost: 0, dup: 0 });
    expect(all.flatMap((x) => x.flaps)).toEqual([]);
    expect(closes).toBeGreaterThan(0);
    expect(steered).toBeGreaterThan(0);
    // every moved client came back with its session
    expect(all.flatMap((x) => x.connects.slice(1)).every(Boolean)).toBe(true);
    expect(all.filter((x) => x.disconnects.length).length).toBeGreaterThanOrEqual(closes > 20 ? 20 : 1);
    const members = await all[1].socket.emitWithAck('get-room-members', all[1].room);
    expect(members).toMatchObject({ ok: true, count: 10 });
    expect((members.members as Array<{ sockets: number }>).every((m) => m.sockets === 1)).toBe(true);
  });

  test('REBALANCE_ENABLED=false: nothing moves after the scale-out', async () => {
    const prefix = uniquePrefix();
    const off = { REBALANCE_ENABLED: 'false' };
    gws.push(await gateway(prefix, 'a', off));
    lb = await startHttpBalancer([gws[0].port]);
    const all = await clients(lb.url, prefix, 20, 2);
    gws.push(await gateway(prefix, 'b', off));
    lb.setBackends(gws.map((g) => g.port));
    await sleep(10 * HB);
    expect(counts(gws)).toEqual([20, 0]);
    expect(await total(gws, 'realtime_gateway_rebalance_closes_total')).toBe(0);
    expect(all.every((x) => x.disconnects.length === 0)).toBe(true);
  });
});

/**
 * Browser-like cookies for socket.io-client in Node: engine.io-client makes a new cookie jar for
 * every connection attempt, so a reconnect forgets the balancer's cookie (Node clients are never
 * sticky across reconnects). A client given `cookieJar` keeps that one jar across its reconnects,
 * as a browser keeps its cookies: the case where a balancer sends a moved client straight back.
 */
function keepCookiesAcrossReconnects(): () => unknown {
  const { Socket: Engine } = require('engine.io-client');
  const { CookieJar } = require(path.join(path.dirname(require.resolve('engine.io-client')), 'globals.node.js'));
  if (!Object.getOwnPropertyDescriptor(Engine.prototype, '_cookieJar'))
    Object.defineProperty(Engine.prototype, '_cookieJar', {
      configurable: true,
      get() {
        return this.opts?.cookieJar ?? this.ownJar;
      },
      set(v) {
        this.ownJar = v;
      },
    });
  return () => new CookieJar();
}

describe('scale-out behind a balancer with cookie affinity (REBALANCE_AFFINITY_COOKIE)', () => {
  let gws: Array<RunningGateway & { stop(): Promise<void> }> = [];
  let lb: HttpBalancer;
  afterEach(async () => {
    closeClients();
    await lb?.close();
    await Promise.all(gws.map((g) => g.stop()));
    gws = [];
  });

  test('moved clients coming straight back with the cookie are turned away once, land elsewhere, recover; no flap', async () => {
    const prefix = uniquePrefix();
    const env = { REBALANCE_AFFINITY_COOKIE: AFFINITY_COOKIE };
    gws.push(await gateway(prefix, 'a', env));
    lb = await startHttpBalancer([gws[0].port], { sticky: true });
    // polling first, keeping the balancer's cookie across reconnects as a browser does
    const jar = keepCookiesAcrossReconnects();
    const all = await clients(lb.url, prefix, 40, 4, () => ({
      transports: ['polling', 'websocket'],
      withCredentials: true,
      cookieJar: jar(),
    }));
    arm(all);
    gws.push(await gateway(prefix, 'b', env));
    lb.setBackends(gws.map((g) => g.port));
    await until(() => withinBand(counts(gws)), 30000, `even counts (now ${counts(gws)})`);
    const refusals = await total(gws, 'realtime_gateway_rebalance_affinity_refusals_total');
    const closes = await total(gws, 'realtime_gateway_rebalance_closes_total');
    console.log(`rebalance sticky 1->2: counts ${counts(gws)}, closes ${closes}, refusals ${refusals}`);
    expect(refusals).toBeGreaterThan(0);
    expect(refusals).toBeLessThanOrEqual(closes);
    // with affinity nothing is steered (the cookie would pin the session's requests to the wrong pod)
    expect(await total(gws, 'realtime_gateway_rebalance_steered_handshakes_total')).toBe(0);
    expect(all.flatMap((x) => x.flaps)).toEqual([]);
    expect(all.flatMap((x) => x.connects.slice(1)).every(Boolean)).toBe(true);
  });
});

describe('a Redis outage in the middle of a rebalancing', () => {
  let gws: Array<RunningGateway & { stop(): Promise<void> }> = [];
  let lb: HttpBalancer;
  let own: TestRedis;
  afterEach(async () => {
    closeClients();
    await lb?.close();
    await Promise.all(gws.map((g) => g.stop()));
    gws = [];
    await own?.stop().catch(() => undefined);
  });

  test('shedding holds while the counts cannot be read or written, and resumes after', async () => {
    own = await startRedis({ appendonly: true });
    const prefix = uniquePrefix();
    const env = { REDIS_URL: own.url, REBALANCE_RATE_PERCENT: '3' };
    gws.push(await gateway(prefix, 'a', env));
    lb = await startHttpBalancer([gws[0].port]);
    await clients(lb.url, prefix, 40, 4, { transports: ['websocket'] });
    gws.push(await gateway(prefix, 'b', env));
    lb.setBackends(gws.map((g) => g.port));
    const closes = () => total(gws, 'realtime_gateway_rebalance_closes_total');
    await until(async () => (await closes()) >= 2, 20000, 'shedding under way');
    await own.stop(true);
    await sleep(2 * HB);
    const during = await closes();
    await sleep(3000);
    expect(await closes()).toBe(during);
    await own.restart();
    await until(() => withinBand(counts(gws)), 40000, `even counts after the outage (now ${counts(gws)})`);
    expect(await closes()).toBeGreaterThan(during);
  });
});

describe('a steered handshake whose target cannot take it is served here', () => {
  const servers: http.Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });
  const listen = async (handler: http.RequestListener) => {
    const s = http.createServer(handler);
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return (s.address() as AddressInfo).port;
  };
  const get = (port: number) =>
    new Promise<string>((resolve) => {
      http
        .get({ host: '127.0.0.1', port, path: '/socket.io/?EIO=4&transport=polling', agent: false }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        })
        .on('error', () => resolve('error'));
    });

  test('unreachable, unknown and live targets: here, here, there (marked forwarded)', async () => {
    const seen: string[] = [];
    const remote = await listen((req, res) => {
      seen.push(String(req.headers[FORWARDED_HEADER]));
      res.end('there');
    });
    const dead = await freePort();
    const pods: PodInfo[] = [
      { id: 'dead', tag: 'deadpod1', address: `http://127.0.0.1:${dead}`, connections: 0, lastHeartbeat: Date.now() },
      { id: 'live', tag: 'livepod1', address: `http://127.0.0.1:${remote}`, connections: 0, lastHeartbeat: Date.now() },
    ];
    const dir = new PodDirectory(async () => pods, { tag: 'selfpod1', address: () => undefined });
    await dir.refresh();
    const metrics = createMetrics(new Registry(), { defaults: false });
    const fwd = new Forwarder(
      dir,
      { ownTag: 'selfpod1', path: '/socket.io/', maxConnections: 10, connectTimeoutMs: 300, timeoutMs: 2000 },
      metrics,
      createLogger('gateway', 'silent', 'test'),
    );
    let target = 'deadpod1';
    const front = await listen((req, res) => fwd.handshake(target, req, res, () => res.end('here')));
    expect(await get(front)).toBe('here');
    target = 'nosuchpd';
    expect(await get(front)).toBe('here');
    target = 'livepod1';
    expect(await get(front)).toBe('there');
    expect(seen).toEqual(['selfpod1']);
    fwd.close();
  });
});
