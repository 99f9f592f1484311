import fs from 'fs';
import os from 'os';
import path from 'path';
import { execFileSync } from 'child_process';
import { freePort, Managed, spawnTracked, trackTempDir, waitPort } from './proc';

export interface BenchRedis {
  url: string;
  port: number;
  proc: Managed;
  stop(): Promise<void>;
}

/** Starts the benchmark's own redis-server on a free loopback port (no persistence). Never uses an external REDIS_URL. */
export async function startBenchRedis(): Promise<BenchRedis> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'redis-server is not on PATH (Debian/Ubuntu: apt-get install -y redis-server); the benchmark starts its own on loopback',
    );
  }
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-bench-redis-'));
  const tmp = trackTempDir(dir);
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
    'no',
    '--maxclients',
    '1000',
    '--loglevel',
    'warning',
  ];
  const proc = spawnTracked('redis-server', 'redis-server', args, { PATH: process.env.PATH });
  await waitPort(port, 10000, proc);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    proc,
    async stop() {
      await proc.stop(2000);
      fs.rmSync(dir, { recursive: true, force: true });
      tmp.forget();
    },
  };
}
