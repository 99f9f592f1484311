/**
 * Benchmark suite entry point: `npm run bench` (builds, then runs dist/bench/run.js).
 *
 * Runs the benchmarks of the registry below in order (or those named in BENCH_ONLY, comma-separated),
 * prints a side-by-side table per benchmark on stdout, and writes .bench/results.json with the
 * numbers, the machine and the parameters. Progress goes to stderr.
 *
 * Adding a benchmark: write bench/<name>.ts exporting a `Benchmark` (see lib/types.ts), import it
 * here and append it to REGISTRY. It gets the run's Redis through ctx.redis(), starts servers
 * with lib/targets.ts (real child processes, always stopped), and returns rows + raw data.
 */
import { execFileSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { clusterSpread } from './cluster-spread';
import { fanout } from './fanout';
import { hop } from './hop';
import { memory } from './memory';
import { publish } from './publish';
import { presence } from './presence';
import { recoveryStorm } from './recovery-storm';
import { scaleout } from './scaleout';
import { storm } from './storm';
import { tax } from './tax';
import { killAll, openFilesLimit, stillRunning } from './lib/proc';
import { BenchRedis, startBenchRedis } from './lib/redis';
import { ratio, rowsJson, sideBySide, targetMet, targetText } from './lib/report';
import { ROOT } from './lib/targets';
import type { Benchmark, BenchContext, BenchResult, MachineInfo } from './lib/types';

/** Every benchmark, in run order. */
export const REGISTRY: Benchmark[] = [fanout, memory, publish, presence, hop, scaleout, tax, recoveryStorm, clusterSpread, storm];

function machine(): MachineInfo {
  const cpus = os.cpus();
  const limit = openFilesLimit();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    kernel: os.release(),
    totalMemMiB: Math.round(os.totalmem() / 2 ** 20),
    loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
    openFilesLimit: Number.isFinite(limit) ? limit : null,
  };
}

/** The commit measured, and whether the work tree differed from it. */
function gitState(): { commit: string | null; dirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty =
      execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim() !== '';
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: null };
  }
}

function select(): Benchmark[] {
  const only = (process.env.BENCH_ONLY ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!only.length) return REGISTRY;
  const unknown = only.filter((n) => !REGISTRY.some((b) => b.name === n));
  if (unknown.length)
    throw new Error(`BENCH_ONLY: unknown benchmark(s) ${unknown.join(', ')}; known: ${REGISTRY.map((b) => b.name).join(', ')}`);
  return REGISTRY.filter((b) => only.includes(b.name));
}

async function runBounded(b: Benchmark, ctx: BenchContext): Promise<BenchResult> {
  const limit = process.env.BENCH_TIMEOUT_MS ? Number(process.env.BENCH_TIMEOUT_MS) : b.timeoutMs;
  if (!Number.isFinite(limit) || limit <= 0)
    throw new Error(`BENCH_TIMEOUT_MS must be a positive number of milliseconds, got "${process.env.BENCH_TIMEOUT_MS}"`);
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const work = b.run(ctx, ac.signal);
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new Error(`${b.name}: exceeded its time bound of ${limit / 1000} s`));
    }, limit);
  });
  try {
    return await Promise.race([work, timeout]);
  } catch (e) {
    // Give the benchmark a moment to run its own cleanup after the abort, then kill what is left.
    await Promise.race([work.catch(() => undefined), new Promise((r) => setTimeout(r, 10000))]);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<number> {
  const started = Date.now();
  const outDir = path.join(ROOT, '.bench');
  fs.mkdirSync(outDir, { recursive: true });
  const log = (msg: string) => process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
  const benchmarks = select();
  const m = machine();
  let redis: Promise<BenchRedis> | undefined;
  const ctx: BenchContext = {
    redis: () => (redis ??= startBenchRedis().then((r) => (log(`redis-server on ${r.url} (pid ${r.proc.pid})`), r))),
    machine: m,
    outDir,
    log,
  };
  process.stdout.write(
    `Benchmarks: ${benchmarks.map((b) => b.name).join(', ')} | ${m.cores} cores (${m.cpuModel}), node ${m.node}, ${m.platform}, ${m.totalMemMiB} MiB RAM, ` +
      `ulimit -n ${m.openFilesLimit ?? 'unlimited'}, load average ${m.loadavg.join(' ')}\n`,
  );
  if (m.loadavg[0] > m.cores * 0.5) {
    process.stdout.write(
      `WARNING: the machine is already busy (1-min load ${m.loadavg[0]} on ${m.cores} cores): throughput and latency will be noisy; CPU ms per delivery is the steadier comparison\n`,
    );
  }
  const results: Record<string, unknown> = {};
  const verdicts: string[] = [];
  let failed = 0;
  try {
    for (const b of benchmarks) {
      const t0 = Date.now();
      log(`${b.name}: ${b.description}`);
      try {
        const r = await runBounded(b, ctx);
        const seconds = (Date.now() - t0) / 1000;
        process.stdout.write(`\n== ${r.title} [${b.name}, ${seconds.toFixed(1)} s] ==\n${sideBySide(r.rows, r.columns)}\n`);
        for (const n of r.notes ?? []) process.stdout.write(`  - ${n}\n`);
        if (r.extra) process.stdout.write(`\n${r.extra}\n`);
        results[b.name] = { title: r.title, seconds, params: r.params, table: rowsJson(r.rows), notes: r.notes ?? [], data: r.data };
        for (const row of r.rows.filter((x) => x.target || x.gatewayTarget)) {
          const what = row.target ? `gateway/bare = ${ratio(row.gateway, row.bare).toFixed(2)}` : `gateway = ${row.gateway.toFixed(2)}`;
          verdicts.push(`${b.name}: ${row.metric.trim()} ${what} (target ${targetText(row)}) ${targetMet(row) ? 'PASS' : 'FAIL'}`);
        }
      } catch (e) {
        failed++;
        const msg = (e as Error).stack ?? String(e);
        process.stdout.write(`\n== ${b.name}: FAILED ==\n${msg}\n`);
        results[b.name] = { error: (e as Error).message, seconds: (Date.now() - t0) / 1000 };
      }
      // Nothing of one benchmark runs into the next: each gets a fresh Redis too.
      await killAll(2000);
      if (redis) await (await redis.catch(() => undefined))?.stop();
      redis = undefined;
    }
  } finally {
    await killAll(2000);
    if (redis) await (await redis.catch(() => undefined))?.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  const loadEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  const file = path.join(outDir, 'results.json');
  const doc = {
    startedAt: new Date(started).toISOString(),
    seconds,
    machine: m,
    loadavgAtEnd: loadEnd,
    git: gitState(),
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_'))),
    benchmarks: results,
  };
  fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  if (verdicts.length) process.stdout.write(`\nTargets:\n${verdicts.map((v) => `  ${v}`).join('\n')}\n`);
  const left = stillRunning();
  if (left.length) process.stdout.write(`WARNING: processes still running: ${left.join(', ')}\n`);
  process.stdout.write(
    `\nTotal ${seconds.toFixed(1)} s (load average at the end ${loadEnd.join(' ')}); results in ${path.relative(process.cwd(), file) || file}\n`,
  );
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
    await killAll(1000);
    process.exit(1);
  },
);
