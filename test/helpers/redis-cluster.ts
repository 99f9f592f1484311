import { ChildProcess, execFile, spawn } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { freePort, waitPort } from './redis';

export interface TestRedisCluster {
  /** Seed URL (the first master); use with REDIS_CLUSTER=true. */
  url: string;
  ports: number[];
  dir: string;
  /**
   * Stops every node (SIGTERM, SIGKILL after 3 s) and removes the data directory; first waits
   * (at most 5 s) until no client is blocked in a command (stop the gateways before).
   */
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

/**
 * Starts a local 3-master Redis Cluster (no replicas) on free loopback ports and waits until every
 * node reports `cluster_state:ok`. Nodes run without persistence from a fresh temporary directory.
 */
export async function startRedisCluster(opts: { masters?: number; readyTimeoutMs?: number } = {}): Promise<TestRedisCluster> {
  const n = opts.masters ?? 3;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-redis-cluster-'));
  const procs: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    // Clients blocked in XREAD (the adapter's stream pollers) close themselves only once their
    // read returns; stopping the nodes under them leaves ioredis Cluster clients reconnecting
    // forever in the test process. Give them (at most 5 s) to leave first.
    const end = Date.now() + 5000;
    while (ports.length && Date.now() < end) {
      const lists = await Promise.all(ports.map((p) => cli(p, ['client', 'list'], 2000).catch(() => '')));
      if (!lists.some((l) => / flags=[A-Za-z]*b/.test(l))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await Promise.all(
      procs.map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        const t = setTimeout(() => p.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }),
    );
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < n; i++) {
      const port = await freePort();
      ports.push(port);
      // --dir keeps the nodes file out of the cwd; --cluster-config-file is relative to it.
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
        '--loglevel',
        'warning',
      ];
      const p = spawn('redis-server', args, { stdio: 'ignore' });
      procs.push(p);
    }
    await Promise.all(ports.map((p) => waitPort(p, 10000)));
    await cli(ports[0], ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], 30000);
    const end = Date.now() + (opts.readyTimeoutMs ?? 20000);
    for (;;) {
      const infos = await Promise.all(ports.map((p) => cli(p, ['cluster', 'info']).catch(() => '')));
      if (infos.every((s) => s.includes('cluster_state:ok') && /cluster_known_nodes:(\d+)/.exec(s)?.[1] === String(n))) break;
      if (Date.now() > end) throw new Error(`cluster not ok after ${opts.readyTimeoutMs ?? 20000} ms:\n${infos.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `redis://127.0.0.1:${ports[0]}`, ports, dir, stop };
}
