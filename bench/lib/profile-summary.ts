/**
 * Summarises a V8 CPU profile (.cpuprofile): self time by module group and by function.
 * Usable as a library (fan-out with BENCH_PROFILE=1) or on its own:
 *   node dist/bench/lib/profile-summary.js .bench/profiles/<file>.cpuprofile [top]
 */
import fs from 'fs';
import type { CpuProfile } from './inspector';

export interface ProfileSummary {
  totalMs: number;
  /** Time not idle (total minus `(idle)`). */
  busyMs: number;
  groups: Array<{ group: string; selfMs: number; pct: number }>;
  functions: Array<{ fn: string; where: string; group: string; selfMs: number; pct: number }>;
}

/** A module group for a script URL: npm package, our source folder, node internals or a V8 pseudo-node. */
export function groupOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (idle), (program), (root)
    return '(native)';
  }
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const m = /\/dist\/(services\/[^/]+\/[^/]+|bench\/[^/]+)\.js$/.exec(url);
  if (m) return m[1];
  return url.replace(/^file:\/\//, '');
}

export function summarise(profile: CpuProfile, top = 20): ProfileSummary {
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) self.set(samples[i], (self.get(samples[i]) ?? 0) + (deltas[i] ?? 0));
  const byGroup = new Map<string, number>();
  const byFn = new Map<string, { fn: string; where: string; group: string; us: number }>();
  let total = 0;
  let idle = 0;
  for (const n of profile.nodes) {
    const us = self.get(n.id) ?? 0;
    if (!us) continue;
    total += us;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') idle += us;
    const group = groupOf(url, functionName);
    byGroup.set(group, (byGroup.get(group) ?? 0) + us);
    const short = url.replace(/^.*\/(node_modules|dist)\//, '$1/');
    const where = url ? `${short}:${lineNumber + 1}` : '';
    const key = `${functionName}|${where}`;
    const e = byFn.get(key) ?? { fn: functionName || '(anonymous)', where, group, us: 0 };
    e.us += us;
    byFn.set(key, e);
  }
  const busy = total - idle;
  const pct = (us: number) => (busy > 0 ? (100 * us) / busy : 0);
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    groups: [...byGroup.entries()]
      .filter(([g]) => g !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([group, us]) => ({ group, selfMs: us / 1000, pct: pct(us) })),
    functions: [...byFn.values()]
      .filter((f) => f.fn !== '(idle)')
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ fn: f.fn, where: f.where, group: f.group, selfMs: f.us / 1000, pct: pct(f.us) })),
  };
}

export function formatSummary(title: string, s: ProfileSummary): string {
  const lines = [`${title}: ${s.busyMs.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms sampled`, '  self time by module (% of busy):'];
  for (const g of s.groups.slice(0, 12))
    lines.push(`    ${g.pct.toFixed(1).padStart(5)}%  ${g.selfMs.toFixed(0).padStart(6)} ms  ${g.group}`);
  lines.push('  top functions by self time:');
  for (const f of s.functions.slice(0, 15))
    lines.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.fn}  ${f.where}`);
  return lines.join('\n');
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/lib/profile-summary.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const s = summarise(p, Number(process.argv[3] ?? 25));
  process.stdout.write(formatSummary(file, s) + '\n');
}
