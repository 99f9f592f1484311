import { collectDefaultMetrics, Registry } from 'prom-client';
import { createMetrics, EVENT_LOOP_SAMPLE_MS, Metrics, nsLabel } from '../../services/core/platform/metrics';

jest.mock('prom-client', () => {
  const actual = jest.requireActual<typeof import('prom-client')>('prom-client');
  return { ...actual, collectDefaultMetrics: jest.fn(actual.collectDefaultMetrics) };
});

let metrics: Metrics;
beforeEach(() => {
  metrics = createMetrics(new Registry(), { defaults: false });
});

describe('the catalogue', () => {
  test('names follow realtime_<subsystem>_<name>, counters end in _total, histograms in _seconds', async () => {
    const all = await metrics.registry.getMetricsAsJSON();
    expect(all.length).toBeGreaterThan(30);
    const byType = (t: string) => all.filter((m) => String(m.type) === t);
    expect(byType('counter').length).toBeGreaterThan(20);
    expect(byType('histogram').length).toBeGreaterThanOrEqual(2);
    for (const m of all) {
      expect(m.name).toMatch(/^realtime_[a-z]+_[a-z0-9_]+$/);
      expect(m.help.length).toBeGreaterThan(10);
    }
    for (const m of byType('counter')) expect(m.name).toMatch(/_total$/);
    for (const m of byType('histogram')) expect(m.name).toMatch(/_seconds$/);
  });

  test('with defaults, prom-client process and Node.js metrics are registered too (the runtime dashboard reads them)', async () => {
    const withDefaults = createMetrics(new Registry());
    const names = (await withDefaults.registry.getMetricsAsJSON()).map((m) => m.name);
    for (const n of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_gc_duration_seconds',
      'nodejs_active_handles_total',
    ]) {
      expect(names).toContain(n);
    }
  });
});

describe('the event-loop delay sampler', () => {
  test('samples every 50 ms, not every 10 ms (prom-client default): an idle pod is not woken 100 times a second', () => {
    const spy = collectDefaultMetrics as jest.MockedFunction<typeof collectDefaultMetrics>;
    spy.mockClear();
    createMetrics(new Registry());
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0][0]).toMatchObject({ eventLoopMonitoringPrecision: 50 });
    expect(EVENT_LOOP_SAMPLE_MS).toBe(50);
  });
});

describe('nsLabel', () => {
  test('keeps / and /admin, folds every other namespace into "workspace" (ids never become labels)', () => {
    expect(nsLabel('/')).toBe('/');
    expect(nsLabel('/admin')).toBe('/admin');
    expect(nsLabel('/workspace-acme')).toBe('workspace');
    expect(nsLabel('/workspace-b2c9f0e1-user-chosen')).toBe('workspace');
    expect(nsLabel('/anything-else')).toBe('workspace');
  });
});
