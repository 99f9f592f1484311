import { Adapter } from 'socket.io-adapter';
import { Encoder } from 'socket.io-parser';
import * as WebSocket from 'ws';
import { eventFrame, preEncodeFrame } from '../../services/core/adapter/wire';

// A room broadcast's websocket frame is built once for all its recipients (what socket.io-adapter
// does for its own broadcasts); each connection sends it as is.

type Receiver = { on(ev: 'message', fn: (data: Buffer, isBinary: boolean) => void): void; write(b: Buffer): void };
const ReceiverClass = (WebSocket as unknown as { Receiver: new (o: object) => Receiver }).Receiver;

/** What a websocket client decodes from `frame` (ws's own parser, as a client would). */
function decodeFrame(frame: Buffer[]): Promise<string> {
  return new Promise((resolve) => {
    const r = new ReceiverClass({ isServer: false, maxPayload: 1 << 20 });
    r.on('message', (data) => resolve(data.toString()));
    r.write(Buffer.concat(frame));
  });
}

describe('preEncodeFrame', () => {
  test('the frame is the Engine.IO message "4" + the Socket.IO packet, exactly as socket.io-adapter builds it', async () => {
    const data = ['message', { id: 'm1', roomId: 'lobby', text: 'héllo ✓' }];
    const encoded = [eventFrame('/workspace-a', JSON.stringify(data), '{"v":1}')];
    const opts: { wsPreEncodedFrame?: Buffer[] } = {};
    preEncodeFrame(encoded, opts);
    expect(opts.wsPreEncodedFrame).toBeDefined();
    expect(await decodeFrame(opts.wsPreEncodedFrame!)).toBe(`4${encoded[0]}`);

    // socket.io-adapter's own encoding of the same packet (its _encode sets the same option)
    const adapter = new Adapter({ server: { encoder: new Encoder() } } as never);
    const theirs: { wsPreEncodedFrame?: Buffer[] } = {};
    const packet = { type: 2, nsp: '/workspace-a', data: [...data, '{"v":1}'] };
    const theirEncoded = (adapter as unknown as { _encode(p: object, o: object): unknown[] })._encode(packet, theirs);
    expect(theirEncoded).toEqual(encoded);
    expect(Buffer.concat(opts.wsPreEncodedFrame!)).toEqual(Buffer.concat(theirs.wsPreEncodedFrame!));
  });

  test('a large payload gets the extended length header', async () => {
    const text = 'x'.repeat(70000);
    const encoded = [eventFrame('/', JSON.stringify(['message', { text }]), undefined)];
    const opts: { wsPreEncodedFrame?: Buffer[] } = {};
    preEncodeFrame(encoded, opts);
    expect(await decodeFrame(opts.wsPreEncodedFrame!)).toBe(`4${encoded[0]}`);
  });

  test('nothing is pre-encoded for binary packets or several packets (engine.io encodes those per connection)', () => {
    for (const encoded of [['451-["bin",{"_placeholder":true,"num":0}]', Buffer.from([1, 2])], [Buffer.from([1])], []]) {
      const opts: { wsPreEncodedFrame?: unknown } = {};
      preEncodeFrame(encoded, opts);
      expect(opts.wsPreEncodedFrame).toBeUndefined();
    }
  });
});
