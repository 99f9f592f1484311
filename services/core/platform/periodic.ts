import type { Config } from './config';
import type { Logger } from './logger';
import type { Metrics } from './metrics';

/** Every background period of both services, derived from the configuration in one place. */
export function periods(cfg: Pick<Config, 'heartbeatIntervalMs' | 'recoveryWindowMs' | 'presenceGraceMs' | 'inboxMaxAgeMs'>) {
  const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.floor(v)));
  return {
    /** Gateway heartbeat. */
    heartbeatMs: cfg.heartbeatIntervalMs,
    /** Rewrite of every recovery session, well within the window. */
    sessionRefreshMs: Math.max(1000, Math.floor(cfg.recoveryWindowMs / 3)),
    /** Pending offlines and parked memberships: a quarter of the grace period, 50-500 ms. */
    sweepMs: clamp(cfg.presenceGraceMs / 4 || 50, 50, 500),
    /** Inbox retention by age: a tenth of the age, 1 s - 1 min. */
    inboxTrimMs: clamp(cfg.inboxMaxAgeMs / 10, 1000, 60000),
    /** Worker reaper: half a heartbeat, 100 ms - 1 s. */
    reapMs: clamp(cfg.heartbeatIntervalMs / 2, 100, 1000),
    /** Worker queue gauges. */
    gaugesMs: 2000,
    /** A gateway's reconciliation of what Redis holds for it with its sockets (also after every Redis reconnect). */
    reconcileMs: 30000,
  };
}

interface Task {
  timer: NodeJS.Timeout;
  running?: Promise<void>;
}

/**
 * The background loops of a service: each runs every `ms`, skips a run while its previous one is
 * still going, never throws (errors are logged and counted in
 * `realtime_process_task_failures_total{task}`), never keeps the process alive, and `stop()` ends
 * them all and waits for the runs in progress.
 */
export class PeriodicTasks {
  private tasks = new Map<string, Task>();
  private stopped = false;

  constructor(
    private logger: Logger,
    private metrics: Metrics,
  ) {}

  /** Starts `fn` every `ms` (only while `when()` holds, when given). */
  every(name: string, ms: number, fn: () => unknown, when?: () => boolean): void {
    if (this.stopped || this.tasks.has(name)) throw new Error(`periodic task "${name}" cannot be started`);
    const task: Task = { timer: setInterval(() => this.run(name, task, fn, when), ms).unref() };
    this.tasks.set(name, task);
  }

  /** Runs one pass of a task now (unless one is in progress), as its timer would. */
  runNow(name: string, fn: () => unknown): Promise<void> {
    const task = this.tasks.get(name);
    if (task?.running) return task.running;
    return this.guard(name, fn);
  }

  private run(name: string, task: Task, fn: () => unknown, when?: () => boolean): void {
    if (task.running || this.stopped || (when && !when())) return;
    task.running = this.guard(name, fn).finally(() => (task.running = undefined));
  }

  private async guard(name: string, fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.metrics.taskFailures.inc({ task: name });
      this.logger.debug({ task: name, err: (e as Error)?.message ?? String(e) }, 'periodic task failed; retrying next period');
    }
  }

  /** Stops every task; resolves once the runs in progress ended (at most `timeoutMs`). */
  async stop(timeoutMs = 10000): Promise<void> {
    this.stopped = true;
    const running: Promise<void>[] = [];
    for (const t of this.tasks.values()) {
      clearInterval(t.timer);
      if (t.running) running.push(t.running);
    }
    this.tasks.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(running), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}
