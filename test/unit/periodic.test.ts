import { Registry } from 'prom-client';
import { createLogger } from '../../services/core/platform/logger';
import { createMetrics } from '../../services/core/platform/metrics';
import { PeriodicTasks, periods } from '../../services/core/platform/periodic';
import { metricValue } from '../helpers/metrics';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PeriodicTasks', () => {
  const make = () => {
    const metrics = createMetrics(new Registry(), { defaults: false });
    return { metrics, tasks: new PeriodicTasks(createLogger('test', 'silent'), metrics) };
  };

  test('a run is skipped while the previous one is still going', async () => {
    const { tasks } = make();
    let running = 0;
    let most = 0;
    let runs = 0;
    tasks.every('slow', 5, async () => {
      runs++;
      most = Math.max(most, ++running);
      await sleep(40);
      running--;
    });
    // Long enough for a second run even when timers fire late on a busy machine (a run takes 40 ms).
    await sleep(200);
    await tasks.stop();
    expect(most).toBe(1);
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(runs).toBeLessThanOrEqual(5); // at most one per 40 ms run (plus the 5 ms period before each)
  });

  test('a failing run is counted by task and the task keeps running', async () => {
    const { tasks, metrics } = make();
    let runs = 0;
    tasks.every('flaky', 5, () => {
      runs++;
      throw new Error('boom');
    });
    await sleep(60);
    await tasks.stop();
    expect(runs).toBeGreaterThan(2);
    expect(await metricValue(metrics, 'realtime_process_task_failures_total', { task: 'flaky' })).toBe(runs);
  });

  test('when() gates each run; stop() waits for the run in progress and ends every task', async () => {
    const { tasks } = make();
    let open = false;
    let runs = 0;
    let finished = false;
    tasks.every(
      'gated',
      5,
      async () => {
        runs++;
        await sleep(30);
        finished = true;
      },
      () => open,
    );
    await sleep(30);
    expect(runs).toBe(0);
    open = true;
    await sleep(20);
    await tasks.stop();
    expect(finished).toBe(true);
    const after = runs;
    await sleep(30);
    expect(runs).toBe(after);
  });

  test('a task name is started once; runNow runs a pass and counts its failure', async () => {
    const { tasks, metrics } = make();
    tasks.every('once', 1000, () => undefined);
    expect(() => tasks.every('once', 1000, () => undefined)).toThrow(/cannot be started/);
    await tasks.runNow('other', () => Promise.reject(new Error('x')));
    expect(await metricValue(metrics, 'realtime_process_task_failures_total', { task: 'other' })).toBe(1);
    await tasks.stop();
  });
});

describe('periods', () => {
  test('derives every period from the settings, within bounds', () => {
    const p = periods({ heartbeatIntervalMs: 5000, recoveryWindowMs: 120000, presenceGraceMs: 5000, inboxMaxAgeMs: 7 * 24 * 3600 * 1000 });
    expect(p).toEqual({
      heartbeatMs: 5000,
      sessionRefreshMs: 40000,
      sweepMs: 500,
      inboxTrimMs: 60000,
      reapMs: 1000,
      gaugesMs: 2000,
      reconcileMs: 30000,
    });
    const fast = periods({ heartbeatIntervalMs: 100, recoveryWindowMs: 0, presenceGraceMs: 0, inboxMaxAgeMs: 1000 });
    expect(fast).toEqual({
      heartbeatMs: 100,
      sessionRefreshMs: 1000,
      sweepMs: 50,
      inboxTrimMs: 1000,
      reapMs: 100,
      gaugesMs: 2000,
      reconcileMs: 30000,
    });
  });
});
