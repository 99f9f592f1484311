/**
 * The two systems under test, started as real child processes with a uniform handle:
 *  - gateway: dist/services/gateway/main.js (JWT auth, rate limits and rebalancing off, quiet logs);
 *  - bare:    dist/bench/bare-server.js (same Socket.IO options and adapter, minimal handlers).
 * Each cluster gets its own REDIS_KEY_PREFIX, hence its own adapter stream, on the shared Redis.
 */
import http from 'http';
import path from 'path';
import { SignJWT } from 'jose';
import { Inspector } from './inspector';
import { freePort, Managed, sleep, spawnTracked, waitPort } from './proc';

export type Kind = 'gateway' | 'bare';
export const KINDS: Kind[] = ['gateway', 'bare'];

/** The order the kinds run in (BENCH_ORDER: "gateway,bare", the default, or "bare,gateway"). */
export function kindOrder(): Kind[] {
  const order = (process.env.BENCH_ORDER ?? 'gateway,bare').split(',').map((s) => s.trim()) as Kind[];
  if (order.length !== 2 || !KINDS.every((k) => order.includes(k))) throw new Error('BENCH_ORDER must be "gateway,bare" or "bare,gateway"');
  return order;
}

/** dist/ root (this file is dist/bench/lib/targets.js). */
export const DIST = path.resolve(__dirname, '../..');
export const ROOT = path.resolve(DIST, '..');

const BENCH_SECRET = 'bench-secret-that-is-at-least-32-bytes-long!!';
const secretKey = new TextEncoder().encode(BENCH_SECRET);

export interface ServerHandle {
  kind: Kind;
  name: string;
  url: string;
  port: number;
  /** The gateway's METRICS_PORT (`/metrics`); bare servers have none. */
  metricsPort?: number;
  pid: number;
  proc: Managed;
  inspectPort?: number;
  inspector?: Inspector;
}

export interface Cluster {
  kind: Kind;
  servers: ServerHandle[];
  /** What a client sends in its CONNECT packet for `userId` (a signed JWT for the gateway, nothing for bare). */
  auth(userId: string): Promise<Record<string, unknown> | undefined>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  redisUrl: string;
  /** REDIS_KEY_PREFIX: a distinct one per cluster keeps adapter streams apart. */
  prefix: string;
  /** Start with --inspect and attach (GC control, CPU profiles). */
  inspect?: boolean;
  /** Extra environment for the servers. */
  env?: Record<string, string>;
  /** Extra node flags for this cluster (e.g. --perf-basic-prof). */
  nodeArgs?: string[];
}

/** `BENCH_AUTH=insecure`: gateways without JWT verification (AUTH_MODE=insecure, the user id in `auth`), to show what verification costs. */
function insecureAuth(): boolean {
  return process.env.BENCH_AUTH === 'insecure';
}

/** Extra node flags for both kinds of server (same for both: the comparison stays fair). */
function serverNodeArgs(): string[] {
  return (process.env.BENCH_SERVER_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.setTimeout(1000, () => req.destroy());
  });
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string, m?: Managed): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (m && !m.alive()) throw new Error(`${m.name} exited while waiting for ${what}:\n${m.output().slice(-4000)}`);
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}${m ? `:\n${m.output().slice(-4000)}` : ''}`);
    await sleep(50);
  }
}

async function startOne(kind: Kind, index: number, opts: ClusterOptions): Promise<ServerHandle> {
  const port = await freePort();
  const inspectPort = opts.inspect ? await freePort() : undefined;
  const name = `${kind}-${index}`;
  const nodeArgs = [
    '-r',
    path.join(DIST, 'bench/lib/title-preload.js'),
    ...serverNodeArgs(),
    ...(opts.nodeArgs ?? []),
    ...(inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : []),
  ];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOST: '127.0.0.1',
    PORT: String(port),
    REDIS_URL: opts.redisUrl,
    REDIS_KEY_PREFIX: opts.prefix,
    LOG_LEVEL: 'warn',
    BENCH_PROCESS_TITLE: `${opts.prefix} ${name}`,
    ...opts.env,
  };
  let proc: Managed;
  let metricsPort: number | undefined;
  if (kind === 'gateway') {
    metricsPort = await freePort();
    Object.assign(env, {
      METRICS_PORT: String(metricsPort),
      ...(insecureAuth() ? { AUTH_MODE: 'insecure' } : { JWT_SECRET: BENCH_SECRET }),
      RATE_LIMIT_EVENTS_PER_SECOND: '0',
      SOCKET_WRITE_BYTES_PER_SECOND: '0',
      POD_NAME: `${opts.prefix}-${name}`,
      SHUTDOWN_DELAY_MS: '0',
      DRAIN_TIMEOUT_MS: '1000',
      // The benchmarks place their clients (e.g. none on one pod of three, all on the pod to be
      // killed): rebalancing would move them, and these raw clients do not reconnect. As the test
      // harnesses do; a benchmark can still pass REBALANCE_ENABLED in opts.env.
      REBALANCE_ENABLED: 'false',
      ...opts.env,
    });
    const diag = process.env.BENCH_GATEWAY_DIAG ? ['-r', path.join(DIST, 'bench/diag-preload.js')] : [];
    if (process.env.BENCH_GATEWAY_DIAG) env.GATEWAY_DIAG = process.env.BENCH_GATEWAY_DIAG;
    proc = spawnTracked(name, process.execPath, [...nodeArgs, ...diag, path.join(DIST, 'services/gateway/main.js')], env, { cwd: ROOT });
    await waitPort(port, 20000, proc);
    await until(async () => (await httpStatus(`http://127.0.0.1:${metricsPort}/readyz`)) === 200, 20000, `${name} /readyz`, proc);
  } else {
    if (process.env.BENCH_BARE_FEATURES) env.BARE_FEATURES = process.env.BENCH_BARE_FEATURES;
    proc = spawnTracked(name, process.execPath, [...nodeArgs, path.join(DIST, 'bench/bare-server.js')], env, { cwd: ROOT });
    await until(() => proc.output().includes('bare-server ready'), 20000, `${name} ready`, proc);
    await waitPort(port, 5000, proc);
  }
  const h: ServerHandle = { kind, name, url: `http://127.0.0.1:${port}`, port, metricsPort, pid: proc.pid, proc, inspectPort };
  if (inspectPort) h.inspector = await Inspector.attach(inspectPort);
  return h;
}

/** Throws, with the end of its output, when a server process of the cluster is no longer running (`what`: during what). */
export function assertAlive(cluster: Cluster, what: string): void {
  for (const s of cluster.servers) {
    if (s.proc.alive()) continue;
    const code = s.proc.proc.exitCode ?? s.proc.proc.signalCode;
    throw new Error(`${s.name} (pid ${s.pid}) exited (${code}) during ${what}:\n${s.proc.output().slice(-6000)}`);
  }
}

/** Starts `n` server processes of one kind on the shared Redis. */
export async function startCluster(kind: Kind, n: number, opts: ClusterOptions): Promise<Cluster> {
  const servers: ServerHandle[] = [];
  const stop = async () => {
    for (const s of servers) s.inspector?.close();
    await Promise.allSettled(servers.map((s) => s.proc.stop(3000)));
  };
  try {
    for (let i = 0; i < n; i++) servers.push(await startOne(kind, i, opts));
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    kind,
    servers,
    async auth(userId) {
      if (kind === 'bare') return undefined;
      if (insecureAuth()) return { userId };
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userId)
        .setIssuedAt()
        .setExpirationTime('2h')
        .sign(secretKey);
      return { token };
    },
    stop,
  };
}
