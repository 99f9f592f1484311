/**
 * Linux `perf` CPU-time profiles of server processes (opt-in, BENCH_PERF=1). Unlike the V8
 * sampling profiler (wall-clock samples: time a process spends preempted is charged to whatever
 * it was doing, which on a busy small machine inflates syscalls), `perf record -e cpu-clock`
 * samples only while the process runs, so shares are shares of real CPU time. The servers must
 * run with `--perf-basic-prof` so JIT frames have names (/tmp/perf-<pid>.map, removed afterwards).
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import fs from 'fs';
import { groupOf } from './profile-summary';

export function perfAvailable(): boolean {
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface PerfRecording {
  stop(): Promise<void>;
}

/** Starts `perf record` on `pids` (CPU-time samples at `hz`, user and, where allowed, kernel). */
export function perfRecord(pids: number[], out: string, hz = 999): PerfRecording {
  const proc: ChildProcess = spawn('perf', ['record', '-e', 'cpu-clock', '-F', String(hz), '-g', '-p', pids.join(','), '-o', out], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.on('error', () => undefined);
  return {
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGINT');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface PerfSummary {
  samples: number;
  groups: Array<{ group: string; pct: number }>;
  symbols: Array<{ symbol: string; group: string; pct: number }>;
}

/** Classifies a perf symbol: JIT frames by source module (like the V8 profile summary), native code by library. */
function classify(dso: string, sym: string): { group: string; symbol: string } {
  const s = sym.replace(/^\[[.k]\]\s*/, '').trim();
  if (dso.startsWith('[JIT]')) {
    const m = /^(?:JS|LazyCompile|Function|Builtin|RegExp):[*~^]?(\S*)\s+(.*?)(?::\d+)*$/.exec(s);
    if (m) {
      const url = m[2].startsWith('/') ? `file://${m[2]}` : m[2];
      const group = groupOf(url.startsWith('node:') ? url : url, m[1]);
      return { group: `js ${group}`, symbol: `${m[1] || '(anonymous)'} ${m[2].replace(/^.*\/(node_modules|dist)\//, '$1/')}` };
    }
    return { group: 'js (other)', symbol: s };
  }
  if (dso.includes('kernel')) return { group: '(kernel)', symbol: s };
  if (dso === 'node') {
    if (/^Builtins_/.test(s)) return { group: '(V8 builtins)', symbol: s };
    if (/GC|Heap|Scavenge|Mark|Sweep|Evacuat|Compact/.test(s)) return { group: '(V8 GC)', symbol: s };
    if (/^uv_|^node::/.test(s)) return { group: '(node/libuv native)', symbol: s };
    return { group: '(V8/node native)', symbol: s };
  }
  return { group: `(${dso.replace(/\.so.*$/, '')})`, symbol: s };
}

/** Reads a perf.data file into shares by group and by symbol (self time, no children). */
export function perfSummary(file: string, top = 30): PerfSummary {
  const txt = execFileSync('perf', ['report', '-i', file, '--no-children', '--sort', 'dso,sym', '--stdio', '-g', 'none', '-t', '|'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let samples = 0;
  const m = /# Samples: (\d+)([KM]?)/.exec(txt);
  if (m) samples = Number(m[1]) * (m[2] === 'K' ? 1000 : m[2] === 'M' ? 1e6 : 1);
  const groups = new Map<string, number>();
  const symbols: PerfSummary['symbols'] = [];
  for (const line of txt.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [pct, dso, sym] = line.split('|');
    if (sym === undefined) continue;
    const p = parseFloat(pct);
    if (!Number.isFinite(p)) continue;
    const c = classify(dso.trim(), sym);
    groups.set(c.group, (groups.get(c.group) ?? 0) + p);
    symbols.push({ symbol: c.symbol, group: c.group, pct: p });
  }
  return {
    samples,
    groups: [...groups.entries()].sort((a, b) => b[1] - a[1]).map(([group, pct]) => ({ group, pct })),
    symbols: symbols.sort((a, b) => b.pct - a.pct).slice(0, top),
  };
}

/**
 * Inclusive times (a function and everything it called, `perf report --children`) of the
 * JavaScript functions whose source matches `match` (e.g. /dist\/services\//): what a code path
 * costs as a whole, where the self-time summary shows only the leaves (builtins, GC, kernel).
 */
export function perfInclusive(
  file: string,
  match: RegExp,
  top = 30,
): Array<{ symbol: string; group: string; pct: number; selfPct: number }> {
  const txt = execFileSync('perf', ['report', '-i', file, '--children', '--sort', 'dso,sym', '--stdio', '-g', 'none', '-t', '|'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const out: Array<{ symbol: string; group: string; pct: number; selfPct: number }> = [];
  for (const line of txt.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [children, self, dso, sym] = line.split('|');
    if (sym === undefined || !dso.trim().startsWith('[JIT]') || !match.test(sym)) continue;
    const c = classify(dso.trim(), sym);
    out.push({ symbol: c.symbol, group: c.group, pct: parseFloat(children), selfPct: parseFloat(self) });
  }
  // The same function can appear once per optimization tier: merge by name.
  const merged = new Map<string, { symbol: string; group: string; pct: number; selfPct: number }>();
  for (const x of out) {
    const m = merged.get(x.symbol);
    if (m) {
      m.pct += x.pct;
      m.selfPct += x.selfPct;
    } else merged.set(x.symbol, { ...x });
  }
  return [...merged.values()].sort((a, b) => b.pct - a.pct).slice(0, top);
}

/** Text of perfInclusive's list; `cpuMsPer1k` as in formatPerf. */
export function formatInclusive(title: string, xs: ReturnType<typeof perfInclusive>, cpuMsPer1k?: number, unit = 'deliveries'): string {
  const ms = (pct: number) => (cpuMsPer1k ? `${((pct / 100) * cpuMsPer1k).toFixed(3).padStart(8)} ms/1k ${unit}` : '');
  const lines = [`${title}: inclusive time (the function and all it called), % of all samples:`];
  for (const x of xs) lines.push(`  ${x.pct.toFixed(1).padStart(5)}% ${ms(x.pct)}  ${x.symbol.slice(0, 110)}`);
  return lines.join('\n');
}

/** Text summary; `cpuMsPer1k` turns shares into CPU ms per 1,000 `unit`s (deliveries unless told) when given. */
export function formatPerf(title: string, s: PerfSummary, cpuMsPer1k?: number, unit = 'deliveries'): string {
  const ms = (pct: number) => (cpuMsPer1k ? `${((pct / 100) * cpuMsPer1k).toFixed(3).padStart(7)} ms/1k` : '');
  const lines = [`${title}: ${s.samples} CPU-time samples; self time by group${cpuMsPer1k ? ` (and CPU ms per 1k ${unit})` : ''}:`];
  for (const g of s.groups.slice(0, 18)) lines.push(`  ${g.pct.toFixed(1).padStart(5)}% ${ms(g.pct)}  ${g.group}`);
  lines.push('  top symbols:');
  for (const x of s.symbols.slice(0, 25)) lines.push(`  ${x.pct.toFixed(2).padStart(5)}%  ${x.symbol.slice(0, 110)}`);
  return lines.join('\n');
}

/** Removes the JIT maps `--perf-basic-prof` wrote for these pids. */
export function removePerfMaps(pids: number[]): void {
  for (const pid of pids) fs.rmSync(`/tmp/perf-${pid}.map`, { force: true });
}
