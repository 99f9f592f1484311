import { EventEmitter } from 'events';
import type { Server, Socket } from 'socket.io';
import { Registry } from 'prom-client';
import { createMetrics, Metrics } from '../../services/core/platform/metrics';
import { armOutboundBound, boundOutboundBuffers, bufferedBytes } from '../../services/gateway/backpressure';
import { socketIoClientPrototype } from '../../services/gateway/socketio-internals';
import { metricValue } from '../helpers/metrics';

let metrics: Metrics;
beforeEach(() => {
  metrics = createMetrics(new Registry(), { defaults: false });
});
const value = (name: string, labels: Record<string, string> = {}) => metricValue(metrics, name, labels);

describe('boundOutboundBuffers(): packets sent, slow-consumer drops and cuts, volatile drops', () => {
  const SOFT = 1000;
  const HARD = 2000;
  // Socket.IO's Client class (not exported): the bound patches its prototype's writeToEngine.

  const clientPrototype = socketIoClientPrototype<object>(['writeToEngine']);
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
    const client = Object.assign(Object.create(clientPrototype), { server: io, conn }) as { writeToEngine(p: unknown, o: unknown): void };
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
