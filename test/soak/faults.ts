import type { Cluster } from '../e2e/cluster';
import type { PlannedFault } from './plan';

// Runs the planned faults against the local cluster, one at a time, and logs every step with its
// wall-clock time and the pid it hit. A restart goes through local-cluster.sh start-one (the
// settings `up` used, the same POD_NAME) and waits for the process's readiness.

export interface FaultStep {
  at: number;
  time: string;
  action: string;
  pid?: number;
  note?: string;
}

export interface FaultRecord {
  seq: number;
  type: PlannedFault['type'];
  target: string;
  plannedAtMs: number;
  /** Wall-clock ms. */
  startedAt: number;
  endedAt: number;
  steps: FaultStep[];
  ok: boolean;
  error?: string;
  params: Pick<PlannedFault, 'downMs' | 'pauseMs' | 'gapMs'>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function restartWithRetry(c: Cluster, name: string, step: (action: string, note?: string) => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const ms = await c.restart(name);
      step('ready', `start-one took ${ms} ms`);
      return;
    } catch (e) {
      step('restart-failed', (e as Error).message.slice(0, 300));
      if (attempt >= 3) throw e;
      // A half-started process may hold the pid file: stop it before trying again.
      if (c.alive(name)) await c.kill(name, 'SIGKILL').catch(() => undefined);
      await sleep(1000);
    }
  }
}

/** Executes one fault; never throws (a failure is recorded in the returned record). */
export async function runFault(c: Cluster, f: PlannedFault, onStep: (r: FaultRecord, s: FaultStep) => void): Promise<FaultRecord> {
  const rec: FaultRecord = {
    seq: f.seq,
    type: f.type,
    target: f.target,
    plannedAtMs: f.atMs,
    startedAt: Date.now(),
    endedAt: 0,
    steps: [],
    ok: true,
    params: { downMs: f.downMs, pauseMs: f.pauseMs, gapMs: f.gapMs },
  };
  const step = (action: string, note?: string) => {
    const now = Date.now();
    const s: FaultStep = {
      at: now,
      time: new Date(now).toISOString(),
      action,
      pid: c.pids()[f.target] || undefined,
      ...(note ? { note } : {}),
    };
    rec.steps.push(s);
    onStep(rec, s);
  };
  const signal = async (sig: NodeJS.Signals) => {
    step(sig);
    await c.kill(f.target, sig);
  };
  try {
    switch (f.type) {
      case 'gateway-sigkill':
      case 'gateway-same-name':
      case 'worker-sigkill':
      case 'redis-sigkill':
        await signal('SIGKILL');
        step('gone');
        await sleep(f.downMs ?? 0);
        step('restart');
        await restartWithRetry(c, f.target, step);
        break;
      case 'gateway-sigterm':
        try {
          await signal('SIGTERM');
          step('exited');
        } catch (e) {
          step('SIGKILL', `still running after SIGTERM: ${(e as Error).message}`);
          await c.kill(f.target, 'SIGKILL');
        }
        step('restart');
        await restartWithRetry(c, f.target, step);
        break;
      case 'gateway-pause':
        await signal('SIGSTOP');
        await sleep(f.pauseMs ?? 20000);
        await signal('SIGCONT');
        break;
      case 'gateway-double-pause':
        await signal('SIGSTOP');
        await sleep(f.pauseMs ?? 20000);
        await signal('SIGCONT');
        await sleep(f.gapMs ?? 500);
        await signal('SIGSTOP');
        await sleep(f.pauseMs ?? 20000);
        await signal('SIGCONT');
        break;
    }
  } catch (e) {
    rec.ok = false;
    rec.error = (e as Error).message.slice(0, 1000);
    step('error', rec.error);
    // Never leave a process paused or dead behind a failed fault.
    try {
      const pid = c.pids()[f.target];
      if (pid) process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    if (!c.alive(f.target)) await restartWithRetry(c, f.target, step).catch(() => undefined);
  }
  rec.endedAt = Date.now();
  return rec;
}

export interface FaultRunner {
  records: FaultRecord[];
  /** The fault running now, if any. */
  current(): FaultRecord | undefined;
  /** Resolves once every planned fault ran (or was skipped because the load ended). */
  done: Promise<void>;
  /** No new fault starts after this (the one running finishes). */
  stop(): void;
}

/** Runs `plan` relative to `loadStart`; a fault that would end after `loadEnd` is skipped. */
export function runPlan(
  c: Cluster,
  plan: PlannedFault[],
  loadStart: number,
  loadEnd: number,
  log: (line: string) => void,
  onRecord: (r: FaultRecord) => void,
): FaultRunner {
  let stopped = false;
  let running: FaultRecord | undefined;
  const records: FaultRecord[] = [];
  const done = (async () => {
    for (const f of plan) {
      const wait = loadStart + f.atMs - Date.now();
      if (wait > 0) {
        const until = Date.now() + wait;
        while (!stopped && Date.now() < until) await sleep(Math.min(250, until - Date.now()));
      }
      if (stopped) break;
      if (Date.now() + f.estimateMs > loadEnd) {
        log(`fault #${f.seq} ${f.type} ${f.target} skipped: it would not end before the load does`);
        continue;
      }
      const late = Date.now() - (loadStart + f.atMs);
      log(
        `fault #${f.seq} ${f.type} ${f.target} starts${late > 1000 ? ` (${Math.round(late / 1000)} s after its planned time: the previous fault ran long)` : ''}`,
      );
      const rec = runFault(c, f, (r, s) => {
        running = r;
        log(`fault #${r.seq} ${r.type} ${r.target}: ${s.action}${s.pid ? ` pid ${s.pid}` : ''}${s.note ? ` (${s.note})` : ''}`);
      });
      const r = await rec;
      running = undefined;
      records.push(r);
      onRecord(r);
      log(`fault #${r.seq} ${r.type} ${r.target} ${r.ok ? 'done' : 'FAILED'} in ${((r.endedAt - r.startedAt) / 1000).toFixed(1)} s`);
    }
  })();
  return { records, current: () => running, done, stop: () => (stopped = true) };
}
