import path from 'path';
import type { Namespace, Server, Socket } from 'socket.io';
import type { Principal } from '../core/auth/auth';
import type { GatewayContext } from './context';
import { REVOKED, SUPERSEDED } from './lifecycle';
import { allowedRoom } from './rooms';
import { requireMethods } from './socketio-internals';

type SocketCtor = new (nsp: Namespace, client: unknown, auth: Record<string, unknown>, session?: unknown) => Socket;
type Restoring = { restoring?: Set<unknown>; restored?(sid: string, readTo: ReadonlyMap<number, unknown>): void };

/**
 * Connection state recovery, re-authorized. Socket.IO restores a session before any middleware
 * runs, from nothing but the client's `pid` and offset, and sends the missed packets at once: a
 * token for another user would get someone else's rooms and messages. Here the token is verified
 * first (once: the handshake middleware reuses the result), the session is restored only for the
 * same user (`sub`), its rooms are checked against the new token's claims, and the restore reads
 * within its bounds (core/adapter/restore.ts). Anything else is a fresh session.
 */
export function installResume(io: Server, ctx: GatewayContext, verify: (auth: Record<string, unknown>) => Promise<Principal>): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Socket: SocketClass } = require(path.join(path.dirname(require.resolve('socket.io')), 'socket.js')) as { Socket: SocketCtor };
  const patch = (nsp: Namespace) => {
    const ns = requireMethods(
      nsp as unknown as { _createSocket(client: unknown, auth: Record<string, unknown>): Promise<Socket> },
      'Namespace',
      ['_createSocket'],
    );
    ns._createSocket = async (client, auth) => {
      const fresh = () => new SocketClass(nsp, client, auth);
      if (typeof auth?.pid !== 'string' || typeof auth?.offset !== 'string') return fresh();
      ctx.metrics.recoveryAttempts.inc();
      let principal: Principal;
      try {
        principal = await verify(auth);
      } catch {
        return fresh(); // the handshake middleware refuses it, with the reason
      }
      const r = await ctx.engine.recovery
        .restore(nsp, auth.pid, auth.offset, principal.userId, allowedRoom(principal))
        .catch(() => 'unavailable' as const);
      if (typeof r === 'string') {
        ctx.metrics.recoveryRefused.inc({ reason: r });
        return fresh();
      }
      // The same socket still connected here (its old connection not timed out yet): it goes first,
      // quietly, or its disconnect would later remove the recovered socket's id from everything.
      const zombie = nsp.sockets.get(r.session.sid);
      if (zombie) {
        (zombie as unknown as { [SUPERSEDED]?: boolean })[SUPERSEDED] = true;
        zombie.disconnect(true);
      }
      const socket = new SocketClass(nsp, client, auth, r.session);
      // Live broadcasts that arrived during the restore, past what it read: right after the missed packets.
      for (const f of r.buffer.frames)
        (socket.client as unknown as { writeToEngine(p: unknown, o: object): void }).writeToEngine(f.encoded, f.opts);
      const adapter = nsp.adapter as unknown as Restoring;
      adapter.restoring?.delete(r.buffer);
      adapter.restored?.(socket.id, r.buffer.readTo);
      socket.data = { ...socket.data, principal };
      (socket as unknown as { [REVOKED]?: string[] })[REVOKED] = r.revoked;
      return socket;
    };
  };
  for (const nsp of io._nsps.values()) patch(nsp);
  io.on('new_namespace', patch);
}
