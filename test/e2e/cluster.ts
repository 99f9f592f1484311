import { spawn, spawnSync } from 'child_process';
import fs from 'fs';
import http from 'http';
import net from 'net';
import os from 'os';
import path from 'path';
import { token as signToken } from '../helpers/cluster';
import { listenPortCandidate } from '../helpers/redis';

// The e2e harness: the local cluster of `make up` (scripts/local-cluster.sh: Redis with AOF,
// gateways, workers, HAProxy; here with cookie stickiness unless `sticky: false`, which is make up's
// default: round-robin without cookies) on free loopback ports with a temporary run
// folder, one per test file. With E2E_BASE_URL (+ E2E_JWT_SECRET, E2E_API_KEY) the suite targets
// that existing cluster instead (scripts/kind-e2e.sh), and tests needing process control skip.

export const ROOT = path.resolve(__dirname, '../..');
export const SCRIPT = path.join(ROOT, 'scripts/local-cluster.sh');
/** Where the suite leaves logs, results and screenshots (git-ignored). */
export const OUT_DIR = path.join(ROOT, '.run/e2e');
export const EXTERNAL = Boolean(process.env.E2E_BASE_URL);

export type ProcName = string; // gateway-<i>, worker-<i>, redis, haproxy

export interface ClusterOptions {
  /** Names the log folder kept in .run/e2e/logs/<name>. */
  name: string;
  gateways?: number;
  /** Gateways the cluster may be scaled to (`scale()`): their ports are reserved up front; default `gateways`. */
  maxGateways?: number;
  workers?: number;
  /** HAProxy cookie stickiness (LB_STICKY); default on here (scenarios pin clients by the cookie), off in `make up`. */
  sticky?: boolean;
  /** Extra environment of every gateway / worker (GATEWAY_ENV / WORKER_ENV). */
  gatewayEnv?: Record<string, string | number>;
  workerEnv?: Record<string, string | number>;
  /** Where down() copies the processes' logs; default .run/e2e/logs/<name>. */
  logsDir?: string;
  /**
   * Runs scripts/local-cluster.sh (and so dist/) from this copy of the repository instead of the
   * working tree, e.g. a snapshot of the build, so a rebuild meanwhile does not mix versions; the
   * caller builds it (dist/ of the working tree is then left alone).
   */
  appRoot?: string;
}

export interface Cluster {
  name: string;
  baseUrl: string;
  jwtSecret: string;
  apiKey: string;
  /** False for an external cluster (E2E_BASE_URL): no process control, no metrics ports. */
  local: boolean;
  /** The cluster's Redis (local clusters only). */
  redisUrl?: string;
  runDir?: string;
  gateways: ProcName[];
  workers: ProcName[];
  /** Direct URL of a gateway (bypassing the balancer). */
  gatewayUrl(name: ProcName): string;
  /** /metrics of every gateway and worker, by process name. */
  metricsUrls: { gateways: Record<ProcName, string>; workers: Record<ProcName, string> };
  /** Current pid of every process (from the run folder). */
  pids(): Record<ProcName, number>;
  /** True while the process runs (a zombie counts as dead; a stopped one as alive). */
  alive(name: ProcName): boolean;
  /** Sends a signal; for SIGKILL/SIGTERM/SIGINT waits (bounded) until the process is gone. */
  kill(name: ProcName, signal?: NodeJS.Signals): Promise<void>;
  /** Starts the process again with the settings of `up` (local-cluster.sh start-one) and waits for its readiness; resolves with the time it took (ms). */
  restart(name: ProcName): Promise<number>;
  /** `make scale GATEWAYS=n` (local-cluster.sh scale): adds or removes gateways and reloads HAProxy; resolves with the time it took (ms). */
  scale(n: number): Promise<number>;
  /** A JWT for this cluster. */
  token(sub: string, claims?: Record<string, unknown>): Promise<string>;
  down(): Promise<void>;
}

/** Reason printed by the tests that need process control when the suite targets an external cluster. */
export const NEEDS_LOCAL =
  'needs process control of a local cluster; skipped because E2E_BASE_URL targets an external cluster (the kind script deletes pods by itself)';

/** `describe` for scenarios that kill, pause or restart processes: skipped (with a message) against an external cluster. */
export const describeLocal: jest.Describe = EXTERNAL
  ? (((name: string, fn: () => void) => {
      console.warn(`[e2e] skipping "${name}": ${NEEDS_LOCAL}`);
      return describe.skip(`${name} [skipped: needs process control; E2E_BASE_URL targets an external cluster]`, fn);
    }) as unknown as jest.Describe)
  : describe;

function envString(env: Record<string, string | number> = {}): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (!/^[A-Z0-9_]+$/.test(k) || /\s/.test(String(v))) throw new Error(`bad env ${k}=${v}`);
      return `${k}=${v}`;
    })
    .join(' ');
}

/** Runs local-cluster.sh; rejects with its output when it fails or takes longer than `timeoutMs`. */
function runScript(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, root = ROOT): Promise<string> {
  return new Promise((resolve, reject) => {
    const script = root === ROOT ? SCRIPT : path.join(root, 'scripts/local-cluster.sh');
    const p = spawn('bash', [script, ...args], { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code, sig) => {
      clearTimeout(t);
      if (code === 0) resolve(out);
      else reject(new Error(`local-cluster.sh ${args.join(' ')} failed (${code ?? sig}):\n${out.slice(-4000)}`));
    });
  });
}

/** Holds `n` consecutive free loopback ports (local-cluster.sh numbers processes from a base port). */
async function holdRange(n: number, held: net.Server[]): Promise<number> {
  const listen = (port: number) =>
    new Promise<net.Server | null>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(null));
      s.listen(port, '127.0.0.1', () => resolve(s));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = listenPortCandidate(n);
    if (base + n > 65535) continue;
    const got: net.Server[] = [];
    for (let i = 0; i < n; i++) {
      const s = await listen(base + i);
      if (!s) break;
      got.push(s);
    }
    if (got.length === n) {
      held.push(...got);
      return base;
    }
    await Promise.all(got.map((s) => new Promise((r) => s.close(r))));
  }
  throw new Error(`no ${n} consecutive free ports`);
}

/** State of a pid from /proc: 'Z' zombie, 'T' stopped, ... or null when gone. */
function procState(pid: number): string | null {
  try {
    process.kill(pid, 0);
  } catch {
    return null;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return 'R';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GET returning { status, body } (status 0 when the connection fails). */
export function httpGet(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

/** Builds dist/ when it is missing or older than the sources (one builder at a time across jest workers). */
function ensureBuilt(): void {
  const main = path.join(ROOT, 'dist/services/gateway/main.js');
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
    }
    return t;
  };
  const stale = () => !fs.existsSync(main) || newest(path.join(ROOT, 'services')) > newest(path.join(ROOT, 'dist/services'));
  if (!stale()) return;
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const lock = path.join(OUT_DIR, 'build.lock');
  const end = Date.now() + 120000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > end) throw new Error(`${lock} held for 2 minutes`);
      spawnSync('sleep', ['0.2']);
    }
  }
  try {
    if (!stale()) return;
    const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8', timeout: 120000 });
    if (r.status !== 0 && !fs.existsSync(main)) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`);

    if (r.status !== 0) console.warn(`[e2e] npm run build failed; using the existing dist/:\n${r.stdout.slice(-2000)}`);
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The existing cluster named by E2E_BASE_URL (kind e2e): no process control. */
function externalCluster(opts: ClusterOptions): Cluster {
  const baseUrl = process.env.E2E_BASE_URL!.replace(/\/$/, '');
  const jwtSecret = process.env.E2E_JWT_SECRET ?? '';
  const apiKey = process.env.E2E_API_KEY ?? '';
  if (!jwtSecret) throw new Error('E2E_BASE_URL is set but E2E_JWT_SECRET is not');
  const no = (what: string) => () => {
    throw new Error(`${what}: ${NEEDS_LOCAL}`);
  };
  return {
    name: opts.name,
    baseUrl,
    jwtSecret,
    apiKey,
    local: false,
    gateways: [],
    workers: [],
    gatewayUrl: no('gatewayUrl'),
    metricsUrls: { gateways: {}, workers: {} },
    pids: () => ({}),
    alive: () => true,
    kill: async () => no('kill')(),
    restart: async () => no('restart')(),
    scale: async () => no('scale')(),
    token: (sub, claims = {}) => signToken(sub, claims, { secret: jwtSecret }),
    down: async () => undefined,
  };
}

/** Starts a local cluster on free ports (or returns the external one). */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  if (EXTERNAL) return externalCluster(opts);
  if (!opts.appRoot) ensureBuilt();
  const nGw = opts.gateways ?? 3;
  const maxGw = Math.max(nGw, opts.maxGateways ?? nGw);
  const nWk = opts.workers ?? 2;
  let lastErr: unknown;
  for (let attempt = 1; attempt <= 2; attempt++) {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), `rtg-e2e-${opts.name}-`));
    const held: net.Server[] = [];
    const ports = {
      LB_PORT: await holdRange(1, held),
      REDIS_PORT: await holdRange(1, held),
      GATEWAY_BASE_PORT: await holdRange(maxGw, held),
      GATEWAY_METRICS_BASE_PORT: await holdRange(maxGw, held),
      WORKER_BASE_PORT: await holdRange(nWk, held),
      WORKER_METRICS_BASE_PORT: await holdRange(nWk, held),
    };
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RUN_DIR: runDir,
      LB_HOST: '127.0.0.1',
      GATEWAYS: String(nGw),
      WORKERS: String(nWk),
      LB_STICKY: opts.sticky === false ? '0' : '1',
      // Scenarios place and count clients per gateway: rebalancing only where a scenario asks for it (rebalance.test.ts).
      GATEWAY_ENV: envString({ REBALANCE_ENABLED: 'false', ...opts.gatewayEnv }),
      WORKER_ENV: envString(opts.workerEnv),
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'info',
      READY_TIMEOUT: '60',
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    };
    // The jest process's own settings must not leak into the services.
    delete env.REDIS_URL;
    delete env.NODE_OPTIONS;
    const cluster = localCluster(opts, runDir, env, ports, nGw, nWk);
    try {
      await runScript(['up'], env, 120000, opts.appRoot);
      const secrets = Object.fromEntries(
        fs
          .readFileSync(path.join(runDir, 'secrets.env'), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      cluster.jwtSecret = secrets.JWT_SECRET;
      cluster.apiKey = secrets.API_KEY;
      return cluster;
    } catch (e) {
      lastErr = e;
      await cluster.down().catch(() => undefined);
    }
  }
  throw lastErr;
}

/** Run folders of clusters not stopped yet: if the test process exits without afterAll (killed, timed out), their processes are killed. */
const live = new Set<string>();
process.on('exit', () => {
  for (const dir of live) {
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.pid')) : []) {
      try {
        const pid = Number(fs.readFileSync(path.join(dir, f), 'utf8'));
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
});

function localCluster(
  opts: ClusterOptions,
  runDir: string,
  env: NodeJS.ProcessEnv,
  ports: Record<string, number>,
  nGw: number,
  nWk: number,
): Cluster {
  const gatewayNames = (n: number) => Array.from({ length: n }, (_, i) => `gateway-${i + 1}`);
  const gateways = gatewayNames(nGw);
  const workers = Array.from({ length: nWk }, (_, i) => `worker-${i + 1}`);
  const gatewayMetrics = (names: string[]) =>
    Object.fromEntries(names.map((g) => [g, `http://127.0.0.1:${ports.GATEWAY_METRICS_BASE_PORT + index(g)}/metrics`]));
  const index = (name: string) => Number(name.split('-')[1]) - 1;
  const pidOf = (name: string): number | null => {
    try {
      return Number(fs.readFileSync(path.join(runDir, `${name}.pid`), 'utf8').trim());
    } catch {
      return null;
    }
  };
  const alive = (name: string) => {
    const pid = pidOf(name);
    const st = pid ? procState(pid) : null;
    return st !== null && st !== 'Z' && st !== 'X';
  };
  let downed = false;
  live.add(runDir);
  const cluster: Cluster = {
    name: opts.name,
    baseUrl: `http://127.0.0.1:${ports.LB_PORT}`,
    redisUrl: `redis://127.0.0.1:${ports.REDIS_PORT}`,
    jwtSecret: '',
    apiKey: '',
    local: true,
    runDir,
    gateways,
    workers,
    gatewayUrl: (name) => `http://127.0.0.1:${ports.GATEWAY_BASE_PORT + index(name)}`,
    metricsUrls: {
      gateways: gatewayMetrics(gateways),
      workers: Object.fromEntries(workers.map((w) => [w, `http://127.0.0.1:${ports.WORKER_METRICS_BASE_PORT + index(w)}/metrics`])),
    },
    pids: () => Object.fromEntries(['redis', 'haproxy', ...cluster.gateways, ...workers].map((n) => [n, pidOf(n) ?? 0])),
    alive,
    async kill(name, signal = 'SIGTERM') {
      const pid = pidOf(name);
      if (!pid) throw new Error(`no pid file for ${name}`);
      process.kill(pid, signal);
      if (!['SIGKILL', 'SIGTERM', 'SIGINT'].includes(signal)) return;
      const end = Date.now() + 30000;
      while (alive(name)) {
        if (Date.now() > end) throw new Error(`${name} (pid ${pid}) still running 30 s after ${signal}`);
        await sleep(20);
      }
    },
    async restart(name) {
      const t0 = Date.now();
      await runScript(['start-one', name], env, 90000, opts.appRoot);
      return Date.now() - t0;
    },
    async scale(n) {
      const t0 = Date.now();
      await runScript(['scale', String(n)], env, 120000, opts.appRoot);
      cluster.gateways = gatewayNames(n);
      cluster.metricsUrls.gateways = gatewayMetrics(cluster.gateways);
      return Date.now() - t0;
    },
    token: (sub, claims = {}) => signToken(sub, claims, { secret: cluster.jwtSecret }),
    async down() {
      if (downed) return;
      downed = true;
      live.delete(runDir);
      // A paused process would ignore SIGTERM until resumed.
      for (const n of Object.keys(cluster.pids())) {
        const pid = pidOf(n);
        if (pid && procState(pid) === 'T') process.kill(pid, 'SIGCONT');
      }
      try {
        await runScript(['down'], env, 90000, opts.appRoot);
      } finally {
        const keep = opts.logsDir ?? path.join(OUT_DIR, 'logs', opts.name);
        fs.rmSync(keep, { recursive: true, force: true });
        fs.mkdirSync(path.dirname(keep), { recursive: true });
        if (fs.existsSync(path.join(runDir, 'logs'))) fs.cpSync(path.join(runDir, 'logs'), keep, { recursive: true });
        fs.rmSync(runDir, { recursive: true, force: true });
      }
    },
  };
  return cluster;
}

/**
 * One cluster for the enclosing describe block (or file): started in beforeAll, stopped in
 * afterAll even when a test failed. Returns a getter.
 */
export function useCluster(opts: ClusterOptions): () => Cluster {
  let cluster: Cluster | undefined;
  beforeAll(async () => {
    cluster = await startCluster(opts);
  }, 180000);
  afterAll(async () => {
    await cluster?.down();
  }, 120000);
  return () => {
    if (!cluster) throw new Error('the cluster did not start (see the beforeAll error)');
    return cluster;
  };
}

/** Waits until a gateway's /readyz answers `want` (200 or not). */
export async function waitReady(url: string, want = true, timeoutMs = 30000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const { status } = await httpGet(`${url}/readyz`, 2000);
    if ((status === 200) === want) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${url}/readyz did not turn ${want ? 'ready' : 'unready'} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Sums a Prometheus metric over the samples whose labels pass `filter`. */
export function metricSum(text: string, name: string, filter: (labels: Record<string, string>) => boolean = () => true): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    if (filter(labels)) sum += Number(m[4]);
  }
  return sum;
}

/** Scrapes every gateway's /metrics and sums `name` (filtered) over them. */
export async function scrapeGateways(c: Cluster, name: string, filter?: (labels: Record<string, string>) => boolean): Promise<number> {
  let total = 0;
  for (const url of Object.values(c.metricsUrls.gateways)) {
    const { status, body } = await httpGet(url);
    if (status !== 200) throw new Error(`${url} answered ${status}`);
    total += metricSum(body, name, filter);
  }
  return total;
}
