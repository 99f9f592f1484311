import { ChildProcess, spawn } from 'child_process';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';

/**
 * A port to listen on (the first of `n` consecutive ones), outside the kernel's ephemeral range:
 * a server restarted mid-test (Redis, a gateway) must get its port back, and an outgoing connection
 * may otherwise have been given that very port as its local one meanwhile (EADDRINUSE on restart).
 */
export function listenPortCandidate(n = 1): number {
  let lo = 32768;
  let hi = 60999;
  try {
    [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  } catch {
    /* not Linux: the usual range */
  }
  if (lo - n > 10000) return 10000 + Math.floor(Math.random() * (lo - n - 10000));
  return hi + 1 + Math.floor(Math.random() * Math.max(1, 65535 - hi - n));
}

/** A free TCP port on loopback (see listenPortCandidate), or any free one after many tries. */
export async function freePort(): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | null>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(null));
      srv.listen(port, '127.0.0.1', () => {
        const got = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(got));
      });
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryListen(listenPortCandidate());
    if (port !== null) return port;
  }
  const any = await tryListen(0);
  if (any === null) throw new Error('no free loopback port');
  return any;
}

/** Waits until a TCP port accepts connections. */
export async function waitPort(port: number, timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} not open after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  /** Stops the server (SIGTERM, or SIGKILL when `hard`). */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port with the same data directory. */
  restart(): Promise<void>;
}

/**
 * Starts a redis-server on a free loopback port for one test file (or uses REDIS_URL when given,
 * in which case stop/restart are unavailable).
 */
export async function startRedis(opts: { appendonly?: boolean; args?: string[] } = {}): Promise<TestRedis> {
  if (process.env.REDIS_URL && !opts.appendonly && !opts.args) {
    const url = process.env.REDIS_URL;
    return {
      url,
      port: Number(new URL(url).port || 6379),
      dir: '',
      stop: async () => {
        throw new Error('cannot stop an external REDIS_URL');
      },
      restart: async () => {
        throw new Error('cannot restart an external REDIS_URL');
      },
    };
  }
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    opts.appendonly ? 'yes' : 'no',
    ...(opts.appendonly ? ['--appendfsync', 'always'] : []),
    ...(opts.args ?? []),
  ];
  let proc: ChildProcess;
  const launch = async () => {
    proc = spawn('redis-server', args, { stdio: 'ignore' });
    await waitPort(port);
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async stop(hard = false) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
      await exited;
    },
    async restart() {
      await launch();
    },
  };
}
