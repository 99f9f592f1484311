import { EventEmitter } from 'events';
import path from 'path';
import type { Server, Socket } from 'socket.io';
import { Registry } from 'prom-client';
import { GatewayError } from '../../services/core/platform/errors';
import { createLogger } from '../../services/core/platform/logger';
import { createMetrics, Metrics, nsLabel } from '../../services/core/platform/metrics';
import { armOutboundBound, boundOutboundBuffers, bufferedBytes } from '../../services/gateway/backpressure';
import { invoke } from '../../services/gateway/events';

// Each instrumented path moves its metric, read back from a fresh registry per test.

let metrics: Metrics;
beforeEach(() => {
  metrics = createMetrics(new Registry(), { defaults: false });
});

/** Sum of a counter's or gauge's values over the label sets matching `labels` (0 when none). */
async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await metrics.registry.getSingleMetric(name)?.get();
  if (!m) throw new Error(`no metric ${name}`);
  return m.values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((a, v) => a + v.value, 0);
}

/** Observation count of a histogram for `labels`. */
async function histogramCount(name: string, labels: Record<string, string>): Promise<number> {
  const m = await metrics.registry.getSingleMetric(name)?.get();
  if (!m) throw new Error(`no metric ${name}`);
  return m.values
    .filter((v) => (v as { metricName?: string }).metricName === `${name}_count`)
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((a, v) => a + v.value, 0);
}

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

describe('nsLabel', () => {
  test('keeps / and /admin, folds every other namespace into "workspace" (ids never become labels)', () => {
    expect(nsLabel('/')).toBe('/');
    expect(nsLabel('/admin')).toBe('/admin');
    expect(nsLabel('/workspace-acme')).toBe('workspace');
    expect(nsLabel('/workspace-b2c9f0e1-user-chosen')).toBe('workspace');
    expect(nsLabel('/anything-else')).toBe('workspace');
  });
});

describe('invoke(): events received, outcome, errors, duration, drops', () => {
  const logger = createLogger('test', 'silent');
  type Fn = (...args: unknown[]) => Promise<object>;
  /** The part of a Socket.IO socket invoke() uses: `on` (to route events here), `id` and `nsp.name`. */
  const fakeSocket = () => Object.assign(new EventEmitter(), { id: 'sid-1', nsp: { name: '/' } }) as unknown as Socket & EventEmitter;
  /** Routes `event` on the fake socket through invoke(), as the gateway's dispatcher does. */
  const handle = (s: Socket & EventEmitter, event: string, _m: unknown, _l: unknown, fn: Fn) =>
    s.on(event, (...raw: unknown[]) => invoke(s, event, raw, metrics, logger, fn));
  /** Emits `event` with `args` and an ack; resolves with the ack body. */
  const call = (s: EventEmitter, event: string, ...args: unknown[]) => new Promise<any>((resolve) => s.emit(event, ...args, resolve));

  test('a handled event counts outcome ok and one duration observation', async () => {
    const s = fakeSocket();
    handle(s, 'join-room', metrics, logger, async (room) => ({ room }));
    expect(await call(s, 'join-room', 'r1')).toEqual({ ok: true, room: 'r1' });
    expect(await call(s, 'join-room', 'r2')).toEqual({ ok: true, room: 'r2' });
    expect(await value('realtime_gateway_events_received_total', { event: 'join-room', outcome: 'ok' })).toBe(2);
    expect(await histogramCount('realtime_gateway_event_duration_seconds', { event: 'join-room' })).toBe(2);
    expect(await value('realtime_gateway_errors_total')).toBe(0);
  });

  test('a GatewayError counts its code as the outcome and in errors_total', async () => {
    const s = fakeSocket();
    handle(s, 'message', metrics, logger, async () => {
      throw new GatewayError('forbidden', 'no');
    });
    expect(await call(s, 'message', {})).toEqual({ ok: false, error: { code: 'forbidden', message: 'no' } });
    expect(await value('realtime_gateway_events_received_total', { event: 'message', outcome: 'forbidden' })).toBe(1);
    expect(await value('realtime_gateway_errors_total', { code: 'forbidden' })).toBe(1);
    expect(await histogramCount('realtime_gateway_event_duration_seconds', { event: 'message' })).toBe(1);
  });

  test('an unexpected error counts as internal', async () => {
    const s = fakeSocket();
    handle(s, 'message', metrics, logger, async () => {
      throw new TypeError('boom');
    });
    expect(await call(s, 'message', {})).toMatchObject({ ok: false, error: { code: 'internal' } });
    expect(await value('realtime_gateway_events_received_total', { event: 'message', outcome: 'internal' })).toBe(1);
    expect(await value('realtime_gateway_errors_total', { code: 'internal' })).toBe(1);
  });

  test('an event without an ack is dropped and counted (no_ack), the handler never runs', async () => {
    const s = fakeSocket();
    const fn = jest.fn(async () => ({}));
    handle(s, 'message', metrics, logger, fn);
    s.emit('message', { roomId: 'r' });
    expect(fn).not.toHaveBeenCalled();
    expect(await value('realtime_gateway_events_dropped_total', { reason: 'no_ack' })).toBe(1);
    expect(await value('realtime_gateway_events_received_total', { event: 'message', outcome: 'no_ack' })).toBe(1);
    expect(await histogramCount('realtime_gateway_event_duration_seconds', { event: 'message' })).toBe(0);
  });
});

describe('boundOutboundBuffers(): packets sent, slow-consumer drops and cuts, volatile drops', () => {
  const SOFT = 1000;
  const HARD = 2000;
  // Socket.IO's Client class (not exported): the bound patches its prototype's writeToEngine.

  const { Client } = require(path.join(path.dirname(require.resolve('socket.io')), 'client.js')) as { Client: { prototype: object } };
  afterEach(() => jest.restoreAllMocks());

  /** A socket whose Socket.IO client is real and whose Engine.IO connection is a stand-in recording writes. */
  function fakeSocket(transport: 'websocket' | 'polling' = 'websocket') {
    const io = {}; // the limits are looked up by the client's server
    const onCut = jest.fn();
    boundOutboundBuffers(io as unknown as Server, SOFT, HARD, metrics, onCut);
    const written: unknown[] = [];
    const conn = Object.assign(new EventEmitter(), {
      transport: { name: transport, writable: true, socket: { bufferedAmount: 0, terminate: jest.fn() } },
      write: (packet: unknown) => void written.push(packet),
      close: jest.fn(),
    });
    const client = Object.assign(Object.create(Client.prototype), { server: io, conn }) as { writeToEngine(p: unknown, o: unknown): void };
    const socket = { client } as unknown as Socket;
    armOutboundBound(socket);
    const write = (bytes: number, opts: { volatile?: boolean } = {}) => client.writeToEngine('x'.repeat(bytes), opts);
    return { socket, conn, written, onCut, write };
  }

  test('writes below the marks pass and count packets; a flush empties the count', async () => {
    const f = fakeSocket();
    f.write(400);
    f.write(400);
    expect(f.written).toHaveLength(2);
    expect(bufferedBytes(f.socket)).toBe(800);
    expect(await value('realtime_gateway_packets_sent_total')).toBe(2);
    f.conn.emit('flush');
    expect(bufferedBytes(f.socket)).toBe(0);
  });

  test('above the soft mark a volatile packet is dropped (slow_consumer_drops), a normal one still passes', async () => {
    const f = fakeSocket();
    f.write(900);
    f.write(200, { volatile: true });
    expect(await value('realtime_gateway_slow_consumer_drops_total')).toBe(1);
    f.write(200);
    expect(f.written).toHaveLength(2);
    expect(await value('realtime_gateway_packets_sent_total')).toBe(2);
    expect(await value('realtime_gateway_slow_consumer_disconnects_total')).toBe(0);
  });

  test('past the hard mark a burst is tolerated for a moment, then the socket is cut once (slow_consumer_disconnects)', async () => {
    const now = jest.spyOn(Date, 'now').mockReturnValue(1_000_000);
    const f = fakeSocket();
    f.conn.transport.socket.bufferedAmount = 1900; // the websocket's own buffer counts too
    f.write(200);
    expect(await value('realtime_gateway_slow_consumer_disconnects_total')).toBe(0);
    now.mockReturnValue(1_005_000); // the reader did not catch up
    f.write(200);
    expect(f.onCut).toHaveBeenCalledTimes(1);
    expect(f.conn.transport.socket.terminate).toHaveBeenCalledTimes(1);
    expect(await value('realtime_gateway_slow_consumer_disconnects_total')).toBe(1);
    f.write(10); // after the cut nothing is written nor counted
    expect(f.written).toHaveLength(1);
    expect(await value('realtime_gateway_slow_consumer_disconnects_total')).toBe(1);
    expect(await value('realtime_gateway_packets_sent_total')).toBe(1);
  });

  test('a volatile packet for a polling transport that is not writable is dropped (volatile_drops); a huge backlog is cut at once', async () => {
    const f = fakeSocket('polling');
    f.conn.transport.writable = false;
    f.write(10, { volatile: true });
    expect(await value('realtime_gateway_volatile_drops_total')).toBe(1);
    expect(await value('realtime_gateway_slow_consumer_drops_total')).toBe(0);
    expect(f.written).toHaveLength(0);
    f.write(5 * HARD); // beyond any burst allowance: the polling connection is closed, its buffer discarded
    expect(f.conn.close).toHaveBeenCalledWith(true);
    expect(await value('realtime_gateway_slow_consumer_disconnects_total')).toBe(1);
  });
});
