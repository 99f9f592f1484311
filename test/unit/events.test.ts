import { EventEmitter } from 'events';
import type { Socket } from 'socket.io';
import { Registry } from 'prom-client';
import { GatewayError } from '../../services/core/platform/errors';
import { createLogger } from '../../services/core/platform/logger';
import { createMetrics, Metrics } from '../../services/core/platform/metrics';
import { invoke } from '../../services/gateway/events';
import { histogramCount, metricValue } from '../helpers/metrics';

// Each instrumented path moves its metric, read back from a fresh registry per test.
let metrics: Metrics;
beforeEach(() => {
  metrics = createMetrics(new Registry(), { defaults: false });
});
const value = (name: string, labels: Record<string, string> = {}) => metricValue(metrics, name, labels);

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
    expect(await histogramCount(metrics, 'realtime_gateway_event_duration_seconds', { event: 'join-room' })).toBe(2);
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
    expect(await histogramCount(metrics, 'realtime_gateway_event_duration_seconds', { event: 'message' })).toBe(1);
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

  test('an event without an ack runs the same way; only a refusal is answered, as request-error, and counted', async () => {
    const s = fakeSocket();
    const sent: unknown[][] = [];
    const emit = s.emit.bind(s);
    (s as unknown as { emit: (ev: string, ...a: unknown[]) => boolean }).emit = (ev, ...a) => {
      if (ev !== 'request-error') return emit(ev, ...a);
      sent.push([ev, ...a]);
      return true;
    };
    const fn = jest.fn(async (x: unknown) => {
      if (x === 'bad') throw new GatewayError('bad_request', 'no good');
      return {};
    });
    handle(s, 'message', metrics, logger, fn);
    s.emit('message', 'fine');
    s.emit('message', 'bad');
    await new Promise((r) => setImmediate(r));
    expect(fn).toHaveBeenCalledTimes(2);
    expect(sent).toEqual([['request-error', { event: 'message', error: { code: 'bad_request', message: 'no good' } }]]);
    expect(await value('realtime_gateway_request_errors_total', { code: 'bad_request' })).toBe(1);
    expect(await value('realtime_gateway_events_received_total', { event: 'message', outcome: 'ok' })).toBe(1);
    expect(await value('realtime_gateway_events_received_total', { event: 'message', outcome: 'bad_request' })).toBe(1);
    expect(await histogramCount(metrics, 'realtime_gateway_event_duration_seconds', { event: 'message' })).toBe(2);
  });
});
