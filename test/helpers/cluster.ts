import { ChildProcess, spawn } from 'child_process';
import { randomUUID } from 'crypto';
import path from 'path';
import { SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { io as ioc, Socket as ClientSocket, ManagerOptions, SocketOptions } from 'socket.io-client';
import { Config, loadConfig } from '../../services/core/platform/config';
import { createLogger } from '../../services/core/platform/logger';
import { createMetrics, Metrics } from '../../services/core/platform/metrics';
import { createGateway, Gateway } from '../../services/gateway/server';
import { createWorker, Worker } from '../../services/worker/worker';
import { freePort, waitPort } from './redis';
export { metricValue } from './metrics';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!!';
export const ROOT = path.resolve(__dirname, '../..');

/** Signs an HS256 token for tests. */
export async function token(
  sub: string,
  claims: Record<string, unknown> = {},
  opts: { secret?: string; expiresIn?: string | number | null } = {},
): Promise<string> {
  let jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt();
  if (opts.expiresIn !== null) jwt = jwt.setExpirationTime(opts.expiresIn ?? '1h');
  return jwt.sign(new TextEncoder().encode(opts.secret ?? TEST_SECRET));
}

/** A unique prefix so tests sharing one Redis never see each other's keys. */
export function uniquePrefix(): string {
  return `t${randomUUID().slice(0, 8)}`;
}

export interface RunningGateway {
  gateway: Gateway;
  url: string;
  port: number;
  metricsPort: number;
  metrics: Metrics;
  cfg: Config;
}

/** Config for a test process: JWT auth with TEST_SECRET, ephemeral ports, quiet logs, no rebalancing. */
export function testConfig(env: Record<string, string | undefined> = {}, service: 'gateway' | 'worker' = 'gateway'): Config {
  return loadConfig(
    {
      JWT_SECRET: TEST_SECRET,
      PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      SHUTDOWN_DELAY_MS: '0',
      DRAIN_TIMEOUT_MS: '2000',
      // Tests place clients on chosen gateways: rebalancing would move them (test/integration/rebalance.test.ts turns it on).
      REBALANCE_ENABLED: 'false',
      ...env,
    },
    service,
  );
}

/**
 * Starts `n` gateways in this process (ephemeral ports). With `redisUrl` they share Redis
 * (the clustered engine); without, one gateway runs the in-memory engine.
 */
export async function startGateways(
  n: number,
  env: Record<string, string | undefined> = {},
): Promise<{ gateways: RunningGateway[]; stop(): Promise<void> }> {
  const gateways: RunningGateway[] = [];
  const prefix = env.REDIS_KEY_PREFIX ?? uniquePrefix();
  for (let i = 0; i < n; i++) {
    const cfg = testConfig({ POD_NAME: `${prefix}-gw${i}`, REDIS_KEY_PREFIX: prefix, ...env });
    const metrics = createMetrics(new Registry(), { defaults: false });
    const gateway = createGateway(cfg, createLogger('gateway', cfg.logLevel, cfg.podName), metrics);
    const { port, metricsPort } = await gateway.start();
    gateways.push({ gateway, url: `http://127.0.0.1:${port}`, port, metricsPort, metrics, cfg });
  }
  return {
    gateways,
    async stop() {
      await Promise.allSettled(gateways.map((g) => g.gateway.stop()));
    },
  };
}

/** Starts a worker in this process. */
export async function startWorker(
  env: Record<string, string | undefined>,
): Promise<{ worker: Worker; port: number; metricsPort: number; metrics: Metrics; stop(): Promise<void> }> {
  const cfg = testConfig(env, 'worker');
  const metrics = createMetrics(new Registry(), { defaults: false });
  const worker = createWorker(cfg, createLogger('worker', cfg.logLevel, cfg.podName), metrics);
  const { port, metricsPort } = await worker.start();
  return { worker, port, metricsPort, metrics, stop: () => worker.stop() };
}

const clients = new Set<ClientSocket>();

/** Connects a stock socket.io-client; resolves once connected (rejects with the connect_error). */
export function connect(
  url: string,
  auth: Record<string, unknown>,
  opts: Partial<ManagerOptions & SocketOptions> = {},
): Promise<ClientSocket> {
  const s = ioc(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true, ...opts });
  clients.add(s);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('connect timeout')), 10000);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('connect_error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

/**
 * Makes `userId` known in the namespace at `url` (it connected once and left): a direct message
 * to a user id that never connected to a namespace answers not_found (PROTOCOL.md).
 */
export async function seenOnce(url: string, userId: string, claims: Record<string, unknown> = {}): Promise<void> {
  const s = await connect(url, { token: await token(userId, claims) });
  // the connect's presence write is asynchronous: wait until the user shows, then leave
  await until(
    async () => ((await s.emitWithAck('get-presence', [userId])) as { users?: Array<{ lastSeen: unknown }> }).users?.[0]?.lastSeen != null,
    5000,
    `${userId} seen`,
  );
  s.disconnect();
}

/** A client socket that is not connected yet (to observe connect_error and reconnection). */
export function client(url: string, auth: Record<string, unknown>, opts: Partial<ManagerOptions & SocketOptions> = {}): ClientSocket {
  const s = ioc(url, { auth, transports: ['websocket'], forceNew: true, ...opts });
  clients.add(s);
  return s;
}

/** Disconnects every client opened by connect()/client(). */
export function closeClients(): void {
  for (const s of clients) s.disconnect();
  clients.clear();
}

/** Resolves with the next `event` on `socket` (matching `pred`), or rejects after `ms`. */
export function waitFor<T = any>(socket: ClientSocket, event: string, pred: (arg: T) => boolean = () => true, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`timeout waiting for "${event}"`));
    }, ms);
    const on = (arg: T) => {
      if (!pred(arg)) return;
      clearTimeout(t);
      socket.off(event, on);
      resolve(arg);
    };
    socket.on(event, on);
  });
}

/** Collects every `event` payload on `socket` into an array. */
export function collect<T = any>(socket: ClientSocket, event: string): T[] {
  const out: T[] = [];
  socket.on(event, (arg: T) => out.push(arg));
  return out;
}

/** Resolves once `cond()` is true, polling; rejects after `ms`. For state that has no event to await. */
export async function until(cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface GatewayProcess {
  url: string;
  port: number;
  metricsPort: number;
  proc: ChildProcess;
  output: () => string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns the built gateway (`dist/services/gateway/main.js`) or worker as a real process. */
export async function spawnService(service: 'gateway' | 'worker', env: Record<string, string>): Promise<GatewayProcess> {
  const port = await freePort();
  const metricsPort = await freePort();
  const proc = spawn(process.execPath, [path.join(ROOT, `dist/services/${service}/main.js`)], {
    env: {
      PATH: process.env.PATH,
      JWT_SECRET: TEST_SECRET,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      SHUTDOWN_DELAY_MS: '0',
      REBALANCE_ENABLED: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d) => (out += d));
  proc.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  await Promise.race([waitPort(port, 15000), exited.then((c) => Promise.reject(new Error(`${service} exited with ${c}: ${out}`)))]);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    metricsPort,
    proc,
    output: () => out,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

export { waitPort };
