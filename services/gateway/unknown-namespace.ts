import type { Server } from 'socket.io';
import { AuthError } from '../core/platform/errors';
import type { Metrics } from '../core/platform/metrics';
import { socketIoClientPrototype } from './socketio-internals';

/** Socket.IO's packet type for a refused namespace CONNECT. */
const CONNECT_ERROR = 4;
/** The auth object of each CONNECT of a client, by namespace, until it is answered. */
const AUTHS = Symbol('auths');

interface EngineClient {
  server: object;
  [AUTHS]?: Map<string, unknown>;
  connect(name: string, auth?: unknown): void;
  _packet(packet: { type: number; nsp: string; data?: unknown }, opts?: unknown): void;
}

interface Refusing {
  metrics: Metrics;
  /** Why a dynamic namespace refused this CONNECT (its token, its claims), if it said. */
  reasonOf(auth: unknown): AuthError | undefined;
}

const refusing = new WeakMap<object, Refusing>();
let patched = false;

/**
 * PROTOCOL.md gives every refused connection a contract code; Socket.IO answers a CONNECT to a
 * namespace no name or pattern accepts with a bare `connect_error` "Invalid namespace". For the
 * servers passed here that answer carries the reason instead: the one the workspace matcher gave
 * (`unauthorized` for a bad token, `forbidden` for a workspace outside the claim), or `forbidden`
 * for an unknown namespace, with `err.data = { code, message }` like every other refusal, counted
 * by reason. Socket.IO has no hook for it: the one place that builds that packet (Client#connect)
 * hands it to Client#_packet, wrapped here; Client#connect is wrapped to know the CONNECT's auth.
 */
export function refuseUnknownNamespaces(
  io: Server,
  metrics: Metrics,
  reasonOf: (auth: unknown) => AuthError | undefined = () => undefined,
): void {
  refusing.set(io, { metrics, reasonOf });
  if (patched) return;
  patched = true;
  const proto = socketIoClientPrototype<EngineClient>(['_packet', 'connect']);
  const connect = proto.connect;
  proto.connect = function (this: EngineClient, name, auth) {
    if (refusing.has(this.server)) (this[AUTHS] ??= new Map()).set(name, auth);
    return connect.call(this, name, auth);
  };
  const send = proto._packet;
  proto._packet = function (this: EngineClient, packet, opts) {
    const r = refusing.get(this.server);
    if (r && packet.type === CONNECT_ERROR && (packet.data as { message?: unknown } | undefined)?.message === 'Invalid namespace') {
      const e =
        r.reasonOf(this[AUTHS]?.get(packet.nsp)) ??
        new AuthError('forbidden', `unknown namespace ${JSON.stringify(packet.nsp.slice(0, 64))}`, 'namespace');
      r.metrics.authFailures.inc({ reason: e.reason });
      packet = { ...packet, data: { message: e.code, data: { code: e.code, message: e.message } } };
    }
    if (packet.type === CONNECT_ERROR || packet.type === 0) this[AUTHS]?.delete(packet.nsp);
    return send.call(this, packet, opts);
  };
}
