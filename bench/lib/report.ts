import fs from 'fs';
import os from 'os';
import path from 'path';
import type { BenchContext } from './types';
/** Numbers and tables shared by the benchmarks. */

/** Percentile (0-100) of an ascending-sorted array, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return percentile(s, 50);
}

/** How a row of a side-by-side table compares gateway to bare. */
export interface Row {
  metric: string;
  gateway: number;
  bare: number;
  /** Decimals when printing values. */
  digits?: number;
  /** Target on the ratio gateway/bare, e.g. { min: 0.9 } or { max: 1.2 }. */
  target?: { min?: number; max?: number };
  /** Target on the gateway's value itself (e.g. { max: 10 } us per message), when the ratio to bare is not what is targeted. */
  gatewayTarget?: { min?: number; max?: number };
  /** No ratio column (e.g. counts that are 0). */
  noRatio?: boolean;
}

export function ratio(g: number, b: number): number {
  if (!Number.isFinite(g) || !Number.isFinite(b) || b === 0) return NaN;
  return g / b;
}

export function targetMet(r: Row): boolean | undefined {
  const t = r.target ?? r.gatewayTarget;
  if (!t) return undefined;
  const x = r.target ? ratio(r.gateway, r.bare) : r.gateway;
  if (!Number.isFinite(x)) return false;
  if (t.min !== undefined && x < t.min) return false;
  if (t.max !== undefined && x > t.max) return false;
  return true;
}

/** The target of a row as text: `>= 0.9` (ratio gateway/bare) or `gateway <= 10` (the gateway's value). */
export function targetText(r: Row): string {
  const t = r.target ?? r.gatewayTarget;
  if (!t) return '';
  const want = t.min !== undefined ? `>= ${t.min}` : `<= ${t.max}`;
  return r.target ? want : `gateway ${want}`;
}

function fmt(v: number, digits = 0): string {
  if (!Number.isFinite(v)) return 'n/a';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Renders rows as an aligned text table: metric | gateway | bare | ratio | target (`columns` renames the two value columns). */
export function sideBySide(rows: Row[], columns: [string, string] = ['gateway', 'bare']): string {
  const head = ['metric', columns[0], columns[1], 'ratio', 'target'];
  const body = rows.map((r) => {
    const x = ratio(r.gateway, r.bare);
    const target = r.target || r.gatewayTarget ? `${targetText(r)} ${targetMet(r) ? 'PASS' : 'FAIL'}` : '';
    return [
      r.metric,
      fmt(r.gateway, r.digits),
      fmt(r.bare, r.digits),
      r.noRatio ? '' : Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a',
      target,
    ];
  });
  return table(head, body, [false, true, true, true, false]);
}

/** A plain aligned table; `right[i]` right-aligns column i. */
export function table(head: string[], body: string[][], right: boolean[] = []): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (right[i] ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|';
  return [line(head), sep, ...body.map(line)].join('\n');
}

/** Rows as JSON: values, ratio, target verdict. */
export function rowsJson(rows: Row[]): Array<Record<string, unknown>> {
  return rows.map((r) => ({
    metric: r.metric,
    gateway: Number.isFinite(r.gateway) ? r.gateway : null,
    bare: Number.isFinite(r.bare) ? r.bare : null,
    ratio: r.noRatio || !Number.isFinite(ratio(r.gateway, r.bare)) ? null : Number(ratio(r.gateway, r.bare).toFixed(4)),
    target: r.target ?? null,
    gatewayTarget: r.gatewayTarget ?? null,
    targetMet: targetMet(r) ?? null,
  }));
}

/** Integer from the environment, with a default and bounds. */
export function envInt(name: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  return n;
}

/** Writes one benchmark's numbers to `<outDir>/<name>.json` with the time, the machine and the load at the end; returns the file. */
export function writeBenchJson(ctx: BenchContext, name: string, numbers: object): string {
  fs.mkdirSync(ctx.outDir, { recursive: true });
  const file = path.join(ctx.outDir, `${name}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({ at: new Date().toISOString(), machine: ctx.machine, loadavgAtEnd: os.loadavg(), ...numbers }, null, 2) + '\n',
  );
  return file;
}

/** Latency summary of a sample: count, p50/p90/p99 (nearest rank) and max. */
export interface Stats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Summarizes a sample (unsorted) into Stats. */
export function stats(xs: number[]): Stats {
  const s = Float64Array.from(xs).sort();
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.length ? s[s.length - 1] : NaN };
}
