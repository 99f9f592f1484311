/**
 * A local Redis Cluster of 3 masters (no replicas) for the benchmarks, on free loopback ports,
 * without persistence, from a fresh scratch directory. A copy of test/helpers/redis-cluster.ts
 * (bench/ is built by tsconfig.build.json, test/ is not), with the benchmark's process tracking:
 * the nodes are tracked child processes (stopped by the runner and by the watchdog if it dies) and
 * the directory is a tracked scratch folder.
 */
import { execFile } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import Redis from 'ioredis';
import { freePort, Managed, spawnTracked, trackTempDir, waitPort } from './proc';

export interface BenchRedisCluster {
  /** Seed URL (the first master); give the servers REDIS_CLUSTER=true. */
  url: string;
  ports: number[];
  procs: Managed[];
  stop(): Promise<void>;
}

function cli(port: number, args: string[], timeoutMs = 15000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Starts the cluster and waits until every node reports `cluster_state:ok`. */
export async function startBenchRedisCluster(masters = 3, readyTimeoutMs = 20000): Promise<BenchRedisCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-bench-cluster-'));
  const tmp = trackTempDir(dir);
  const procs: Managed[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.allSettled(procs.map((p) => p.stop(3000)));
    fs.rmSync(dir, { recursive: true, force: true });
    tmp.forget();
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      ports.push(port);
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        path.join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxclients',
        '1000',
        '--loglevel',
        'warning',
      ];
      procs.push(spawnTracked(`redis-cluster-${i}`, 'redis-server', args, { PATH: process.env.PATH }));
    }
    await Promise.all(ports.map((p, i) => waitPort(p, 10000, procs[i])));
    await cli(ports[0], ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], 30000);
    const end = Date.now() + readyTimeoutMs;
    for (;;) {
      const infos = await Promise.all(ports.map((p) => cli(p, ['cluster', 'info']).catch(() => '')));
      if (infos.every((s) => s.includes('cluster_state:ok') && /cluster_known_nodes:(\d+)/.exec(s)?.[1] === String(masters))) break;
      if (Date.now() > end) throw new Error(`cluster not ok after ${readyTimeoutMs} ms:\n${infos.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `redis://127.0.0.1:${ports[0]}`, ports, procs, stop };
}

/** What one node has done so far: calls per command (INFO commandstats) and INFO stats counters. */
export interface NodeCounters {
  calls: Record<string, number>;
  stats: Record<string, number>;
}

/** Reads INFO commandstats and INFO stats of one node (a short-lived connection of its own). */
export async function nodeCounters(port: number): Promise<NodeCounters> {
  const r = new Redis(port, '127.0.0.1', {
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    connectTimeout: 30000,
    retryStrategy: () => null,
    connectionName: 'bench-stats',
  });
  r.on('error', () => {
    /* reported by the rejected command */
  });
  try {
    await r.connect();
    const calls: Record<string, number> = {};
    for (const line of (await r.info('commandstats')).split('\n')) {
      const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (m) calls[m[1]] = Number(m[2]);
    }
    const stats: Record<string, number> = {};
    for (const line of (await r.info('stats')).split('\n')) {
      const m = /^([a-z_]+):(\d+)\r?$/.exec(line.trim());
      if (m) stats[m[1]] = Number(m[2]);
    }
    return { calls, stats };
  } finally {
    r.disconnect();
  }
}
