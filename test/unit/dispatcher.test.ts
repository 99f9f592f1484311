import { Registry } from 'prom-client';
import type { Socket } from 'socket.io';
import { loadConfig } from '../../services/core/platform/config';
import { createLogger } from '../../services/core/platform/logger';
import { createMetrics, Metrics } from '../../services/core/platform/metrics';
import type { GatewayContext } from '../../services/gateway/context';
import { createDispatcher, OwedAnswers } from '../../services/gateway/dispatcher';
import type { Handler } from '../../services/gateway/events';
import { metricValue } from '../helpers/metrics';

let metrics: Metrics;
const ctxWith = (env: Record<string, string> = {}) => {
  metrics = createMetrics(new Registry(), { defaults: false });
  const cfg = loadConfig({ AUTH_MODE: 'insecure', ...env });
  return { cfg, metrics, logger: createLogger('test', 'silent') } as unknown as GatewayContext;
};
/** The parts of a socket the dispatcher touches: its connection (`client.conn`), id and namespace. */
const fakeSocket = () => {
  const close = jest.fn();
  return { id: 's1', nsp: { name: '/' }, client: { conn: { close } }, close } as unknown as Socket & { close: jest.Mock };
};
const ack = () => {
  let body: any;
  const fn = (b: unknown) => (body = b);
  return { fn, body: () => body };
};
const tick = () => new Promise((r) => setImmediate(r));

describe('the event dispatcher', () => {
  test('runs the handler and answers { ok: true, ...result }', async () => {
    const handlers: Record<string, Handler> = { echo: async (_c, _s, x) => ({ x }) };
    const dispatch = createDispatcher(ctxWith(), new OwedAnswers())(handlers);
    const a = ack();
    dispatch.call(fakeSocket(), 'echo', 41, a.fn);
    await tick();
    expect(a.body()).toEqual({ ok: true, x: 41 });
  });

  test('an unknown event answers bad_request, and never reaches a handler named like an Object method', async () => {
    const dispatch = createDispatcher(ctxWith(), new OwedAnswers())({});
    for (const event of ['nope', 'constructor', '__proto__', 42]) {
      const a = ack();
      dispatch.call(fakeSocket(), event, a.fn);
      expect(a.body()).toEqual({ ok: false, error: { code: 'bad_request', message: expect.stringContaining('unknown event') } });
    }
    expect(await metricValue(metrics, 'realtime_gateway_events_received_total', { event: 'unknown', outcome: 'bad_request' })).toBe(4);
  });

  test('past the per-socket bucket events answer rate_limited; another socket has its own bucket', async () => {
    const handlers: Record<string, Handler> = { ping: async () => ({}) };
    const dispatch = createDispatcher(ctxWith({ RATE_LIMIT_EVENTS_PER_SECOND: '1', RATE_LIMIT_BURST: '3' }), new OwedAnswers())(handlers);
    const s = fakeSocket();
    const answers = Array.from({ length: 5 }, () => ack());
    for (const a of answers) dispatch.call(s, 'ping', a.fn);
    await tick();
    expect(answers.map((a) => (a.body()?.ok ? true : a.body()?.error?.code))).toEqual([true, true, true, 'rate_limited', 'rate_limited']);
    const other = ack();
    dispatch.call(fakeSocket(), 'ping', other.fn);
    await tick();
    expect(other.body()).toEqual({ ok: true });
    expect(await metricValue(metrics, 'realtime_gateway_rate_limited_total', { scope: 'event' })).toBe(2);
  });

  test('while moving, a connection is closed once it answered every event it owes, not before', async () => {
    let release!: () => void;
    const handlers: Record<string, Handler> = { slow: () => new Promise((r) => (release = () => r({}))) };
    const owed = new OwedAnswers();
    const dispatch = createDispatcher(ctxWith(), owed)(handlers);
    const s = fakeSocket();
    const a = ack();
    dispatch.call(s, 'slow', a.fn);
    expect(owed.owes(s)).toBe(true);
    owed.startMoving();
    await tick();
    expect(s.client.conn.close).not.toHaveBeenCalled();
    release();
    await tick();
    expect(a.body()).toEqual({ ok: true });
    expect(owed.owes(s)).toBe(false);
    expect(s.client.conn.close).toHaveBeenCalledTimes(1);
  });
});
