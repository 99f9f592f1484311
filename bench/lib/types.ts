import type { BenchRedis } from './redis';
import type { Row } from './report';

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  node: string;
  platform: string;
  kernel: string;
  totalMemMiB: number;
  loadavg: number[];
  openFilesLimit: number | null;
}

/** What run.ts hands to every benchmark. */
export interface BenchContext {
  /** The benchmark's own redis-server (started on first use, stopped when the benchmark ends). */
  redis(): Promise<BenchRedis>;
  machine: MachineInfo;
  /** .bench/ at the repository root (git-ignored): profiles and results go there. */
  outDir: string;
  /** Progress line on stderr (stdout carries the tables). */
  log(msg: string): void;
}

export interface BenchResult {
  title: string;
  /** Parameters actually used (after env overrides and clamping). */
  params: Record<string, unknown>;
  /** Side-by-side rows: metric | gateway | bare | ratio | target. */
  rows: Row[];
  /** Headings of the two value columns when they are not `gateway` and `bare` (e.g. two paths of the gateway). */
  columns?: [string, string];
  /** Lines printed under the table (caveats, warnings). */
  notes?: string[];
  /** Free text printed after the notes (e.g. profile summaries). */
  extra?: string;
  /** Raw numbers for results.json. */
  data: Record<string, unknown>;
}

/**
 * One benchmark of the suite. To add one: write bench/<name>.ts exporting a Benchmark and add it
 * to the registry in bench/run.ts; `BENCH_ONLY=<name>` runs it alone.
 */
export interface Benchmark {
  name: string;
  description: string;
  /** Hard bound for the whole benchmark; it is aborted (and its processes killed) past it. */
  timeoutMs: number;
  run(ctx: BenchContext, signal: AbortSignal): Promise<BenchResult>;
}
