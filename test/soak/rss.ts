import fs from 'fs';

// Resident set size of every process of the cluster over time, from /proc/<pid>/status (VmRSS),
// appended to a CSV (one line per process and sample) and summarised per process name.

export interface RssSummary {
  samples: number;
  /** pids seen under this name (a restart starts a new one). */
  pids: number[];
  firstMb: number;
  maxMb: number;
  lastMb: number;
  /** Of the last pid: its first and last sample. */
  lastPidFirstMb: number;
}

export function rssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface RssSampler {
  stop(): void;
  summary(): Record<string, RssSummary>;
}

export function sampleRss(file: string, pids: () => Record<string, number>, everyMs: number, t0: number): RssSampler {
  fs.writeFileSync(file, 't_ms,time,name,pid,rss_kb\n');
  const acc: Record<string, { samples: number; pids: number[]; first: number; max: number; last: number; lastPidFirst: number }> = {};
  const take = () => {
    const now = Date.now();
    const lines: string[] = [];
    const all = { ...pids(), harness: process.pid };
    for (const [name, pid] of Object.entries(all)) {
      if (!pid) continue;
      const kb = rssKb(pid);
      if (kb === undefined) continue;
      lines.push(`${now - t0},${new Date(now).toISOString()},${name},${pid},${kb}`);
      const a = (acc[name] ??= { samples: 0, pids: [], first: kb, max: kb, last: kb, lastPidFirst: kb });
      a.samples++;
      if (!a.pids.includes(pid)) {
        a.pids.push(pid);
        a.lastPidFirst = kb;
      }
      a.max = Math.max(a.max, kb);
      a.last = kb;
    }
    if (lines.length) fs.appendFileSync(file, lines.join('\n') + '\n');
  };
  take();
  const timer = setInterval(take, everyMs);
  const mb = (kb: number) => Math.round(kb / 102.4) / 10;
  return {
    stop: () => {
      clearInterval(timer);
      take();
    },
    summary: () =>
      Object.fromEntries(
        Object.entries(acc).map(([n, a]) => [
          n,
          {
            samples: a.samples,
            pids: a.pids,
            firstMb: mb(a.first),
            maxMb: mb(a.max),
            lastMb: mb(a.last),
            lastPidFirstMb: mb(a.lastPidFirst),
          },
        ]),
      ),
  };
}
