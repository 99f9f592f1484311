/** CPU time of a set of processes over a window, from /proc (user + system). */
import { performance } from 'perf_hooks';
import { cpuMs, switches } from './proc';

export interface CpuWindow {
  /** CPU ms of each process over the window (same order as the pids). */
  ms: number[];
  total: number;
  seconds: number;
  /** Context switches of the processes' main threads over the window: voluntary (wake-ups) and preemptions. */
  wakeups: number;
  preempted: number;
}

/** Starts a window; `stop()` reads the processes again. */
export function cpuWindow(pids: number[]): { stop(): CpuWindow } {
  const t0 = performance.now();
  const c0 = pids.map(cpuMs);
  const s0 = pids.map(switches);
  return {
    stop() {
      const ms = pids.map((pid, i) => cpuMs(pid) - c0[i]);
      const s1 = pids.map(switches);
      const delta = (k: 'voluntary' | 'involuntary') => s1.reduce((a, s, i) => a + s[k] - s0[i][k], 0);
      return {
        ms,
        total: ms.reduce((a, b) => a + b, 0),
        seconds: (performance.now() - t0) / 1000,
        wakeups: delta('voluntary'),
        preempted: delta('involuntary'),
      };
    },
  };
}

/** CPU of `load` above what `idle` spent per second, over `load`'s duration (ms). */
export function aboveIdle(load: CpuWindow, idle: CpuWindow): number {
  return load.total - (idle.total / idle.seconds) * load.seconds;
}
