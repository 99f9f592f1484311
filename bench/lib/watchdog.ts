/**
 * Orphan guard, started detached by proc.ts. Reads "<pid> <starttime>" and "dir <path>" lines on
 * stdin; when stdin closes (the benchmark ended, normally or not) it SIGKILLs every listed pid that
 * still has the same start time (so a pid the kernel has reused meanwhile is left alone), removes
 * the listed scratch folders (rtg-bench-* under the temp dir only), then exits.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';

const pids = new Map<number, string>();
const dirs = new Set<string>();
let buf = '';

function startTime(pid: number): string | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function reap(): void {
  for (const [pid, st] of pids) {
    if (startTime(pid) === st) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  // Only our own scratch folders: directly under the temp dir, named rtg-bench-*.
  for (const d of dirs) {
    if (path.dirname(d) === os.tmpdir() && path.basename(d).startsWith('rtg-bench-')) fs.rmSync(d, { recursive: true, force: true });
  }
  process.exit(0);
}

process.stdin.on('data', (d: Buffer) => {
  buf += d.toString();
  let i: number;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (line.startsWith('dir ')) {
      dirs.add(line.slice(4));
      continue;
    }
    const [pid, st] = line.split(' ');
    if (/^\d+$/.test(pid) && st) pids.set(Number(pid), st);
  }
});
process.stdin.on('end', reap);
process.stdin.on('close', reap);
process.stdin.on('error', reap);
