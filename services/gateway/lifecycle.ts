import type { Socket } from 'socket.io';
import { broadcast } from '../core/adapter';
import type { Principal } from '../core/auth/auth';
import { nsLabel } from '../core/platform/metrics';
import { userRoom } from '../core/redis/keys';
import { armOutboundBound } from './backpressure';
import type { GatewayContext, GatewayState } from './context';
import { replayInbox } from './inbox-events';
import { announceLeave, clientRooms, recordJoin } from './rooms';

/**
 * Disconnect reasons after which the client may come back with its session (Socket.IO's own
 * list): the connection dropped, the client did not leave.
 */
export const RECOVERABLE = new Set([
  'transport error',
  'transport close',
  'forced close',
  'ping timeout',
  'server shutting down',
  'forced server close',
]);

/** Rooms a socket was in, captured while it is disconnecting (Socket.IO empties them before `disconnect`). */
const ROOMS = Symbol('rooms');
type WithRooms = { [ROOMS]?: string[] };

type Dispatch = (this: Socket, event: unknown, ...rest: unknown[]) => void;

/**
 * A socket's life on this pod: on connect it is counted, bounded, registered in presence, its
 * recovered rooms recorded under this pod (or a fresh session announced) and its inbox replayed;
 * on disconnect presence and memberships follow (parked for the grace period when the
 * connection dropped, left at once when the client left).
 */
export function createLifecycle(ctx: GatewayContext, state: GatewayState, dispatch: { client: Dispatch; admin: Dispatch }) {
  const { cfg, metrics, logger } = ctx;

  function onDisconnecting(this: Socket): void {
    (this as unknown as WithRooms)[ROOMS] = clientRooms(this);
  }

  function onDisconnect(this: Socket, reason: string): void {
    const socket = this;
    const label = nsLabel(socket.nsp.name);
    state.connections--;
    metrics.connections.dec({ nsp: label });
    metrics.disconnects.inc({ nsp: label, reason });
    // While draining, memberships stay for the pod that recovers the socket; leftovers are reaped at the end.
    if (state.draining || socket.nsp.name === '/admin') return;
    const userId = (socket.data.principal as Principal).userId;
    ctx.track(ctx.presence.disconnected(socket.nsp.name, userId, socket.id), 'presence disconnect', socket.id);
    const rooms = (socket as unknown as WithRooms)[ROOMS] ?? [];
    if (!rooms.length) return;
    if (RECOVERABLE.has(reason) && cfg.presenceGraceMs > 0) {
      // The connection dropped and may come back (recovered) within the grace period, like
      // presence: the memberships stay, parked, so the rooms see no user-left/user-joined blip.
      ctx.track(
        ctx.engine.rooms.parkRooms(socket.nsp.name, socket.id, cfg.podName, rooms, Date.now() + cfg.presenceGraceMs),
        'parking memberships on disconnect',
        socket.id,
      );
      return;
    }
    for (const room of rooms) ctx.track(announceLeave(ctx, socket, room, userId), 'leave on disconnect', socket.id);
  }

  /** The connection handler of a namespace (`admin`: the admin namespace, no presence, rooms or inbox). */
  return (socket: Socket, admin: boolean): void => {
    const p = socket.data.principal as Principal;
    const label = nsLabel(socket.nsp.name);
    state.connections++;
    metrics.connections.inc({ nsp: label });
    metrics.connects.inc({ nsp: label, recovered: String(socket.recovered) });
    if (socket.recovered) metrics.recoverySuccesses.inc();
    armOutboundBound(socket);
    socket.join(userRoom(p.userId));
    socket.onAny(admin ? dispatch.admin : dispatch.client);
    socket.on('disconnecting', onDisconnecting);
    socket.on('disconnect', onDisconnect);
    if (admin) return;

    ctx.track(ctx.presence.connected(socket.nsp.name, p.userId, socket.id), 'presence connect', socket.id);
    if (socket.recovered) {
      // The rooms came back with the session: record them under this pod.
      for (const room of clientRooms(socket)) ctx.track(recordJoin(ctx, socket, room, p.userId), 're-join after recovery', socket.id);
    } else {
      // Routed through the adapter so the client holds a stream offset from the start (recovery needs one).
      broadcast(socket.nsp, { rooms: [socket.id] }, 'session', { userId: p.userId, recovered: false }).catch(() => undefined);
    }
    replayInbox(ctx, socket).catch((e) => {
      metrics.redisErrors.inc({ op: 'inbox_replay' });
      logger.debug({ err: (e as Error).message, sid: socket.id }, 'inbox replay failed; the client gets it on its next connect');
    });
    ctx.persistSession(socket);
  };
}
