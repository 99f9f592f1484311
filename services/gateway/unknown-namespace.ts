import type { Server } from 'socket.io';
import type { Metrics } from '../core/platform/metrics';
import { socketIoClientPrototype } from './socketio-internals';

/** Socket.IO's packet type for a refused namespace CONNECT. */
const CONNECT_ERROR = 4;

interface EngineClient {
  server: object;
  _packet(packet: { type: number; nsp: string; data?: unknown }, opts?: unknown): void;
}

const refusing = new WeakMap<object, Metrics>();
let patched = false;

/**
 * PROTOCOL.md gives every refused connection a contract code; Socket.IO answers a CONNECT to a
 * namespace no name or pattern matches with a bare `connect_error` "Invalid namespace". For the
 * servers passed here that answer becomes `forbidden` with `err.data = { code, message }`, like
 * every other refusal (counted as auth failure reason `namespace`). Socket.IO has no hook for it:
 * the one place that builds that packet (Client#connect) hands it to Client#_packet, wrapped here.
 */
export function refuseUnknownNamespaces(io: Server, metrics: Metrics): void {
  refusing.set(io, metrics);
  if (patched) return;
  patched = true;
  const proto = socketIoClientPrototype<EngineClient>(['_packet']);
  const send = proto._packet;
  proto._packet = function (this: EngineClient, packet, opts) {
    const m = refusing.get(this.server);
    if (m && packet.type === CONNECT_ERROR && (packet.data as { message?: unknown } | undefined)?.message === 'Invalid namespace') {
      m.authFailures.inc({ reason: 'namespace' });
      const message = `unknown namespace ${JSON.stringify(packet.nsp.slice(0, 64))}`;
      packet = { ...packet, data: { message: 'forbidden', data: { code: 'forbidden', message } } };
    }
    return send.call(this, packet, opts);
  };
}
