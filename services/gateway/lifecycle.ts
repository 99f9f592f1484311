import type { Socket } from 'socket.io';
import { broadcast } from '../core/adapter/broadcast';
import type { Principal } from '../core/auth/auth';
import { nsLabel } from '../core/platform/metrics';
import { clientRoomId, userRoom } from '../core/redis/keys';
import { PRESENCE_PREFIX } from '../core/presence/store';
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

/** A socket's token-expiry timer. */
const EXPIRY = Symbol('expiry');
type WithTimer = { [EXPIRY]?: NodeJS.Timeout };

/** Rooms a recovered session lost because the new token no longer allows them (set by resume.ts). */
export const REVOKED = Symbol('revoked');

/**
 * A socket whose session was recovered on this same pod while it still looked connected (a
 * long-polling or half-open connection not timed out yet): the new socket has its id, so the old
 * one goes without touching presence, rooms or the session, which are the new one's now.
 */
export const SUPERSEDED = Symbol('superseded');
type Flags = { [SUPERSEDED]?: boolean };

/**
 * Token expiry is enforced on open connections: at `exp` the transport closes (recoverably); the
 * client reconnects with its `auth` (a function returning a fresh token) and recovers.
 */
function expireWithToken(socket: Socket, p: Principal): void {
  if (!p.exp) return;
  const t = setTimeout(() => (socket.client as unknown as { conn: { close(): void } }).conn.close(), Math.max(0, p.exp - Date.now()));
  t.unref();
  (socket as unknown as WithTimer)[EXPIRY] = t;
}

/**
 * A recovered socket: its rooms are recorded under this pod, those the new token no longer allows
 * were left (quietly for the others) and the client is told which (`rooms-revoked`), and its
 * session now holds the new principal.
 */
function resumed(ctx: GatewayContext, socket: Socket, p: Principal): void {
  for (const room of clientRooms(socket)) ctx.track(recordJoin(ctx, socket, room, p.userId), 're-join after recovery', socket.id);
  const revoked = (socket as unknown as { [REVOKED]?: string[] })[REVOKED] ?? [];
  if (revoked.length) {
    const quiet = revoked.map((r) => clientRoomId(r)).filter((r): r is string => r !== undefined);
    for (const room of quiet)
      ctx.track(ctx.engine.rooms.roomLeave(socket.nsp.name, room, socket.id, ctx.pod), 'leaving a revoked room', socket.id);
    ctx.track(ctx.engine.recovery.left(socket, revoked), 'dropping revoked rooms from the session', socket.id);
    socket.emit('rooms-revoked', {
      rooms: quiet,
      presence: revoked.filter((r) => r.startsWith(PRESENCE_PREFIX)).map((r) => r.slice(PRESENCE_PREFIX.length)),
    });
  }
  ctx.track(ctx.engine.recovery.resumed(socket), 'session resume', socket.id);
}

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
    clearTimeout((socket as unknown as WithTimer)[EXPIRY]);
    if (state.draining || socket.nsp.name === '/admin' || (socket as unknown as Flags)[SUPERSEDED]) return;
    const userId = (socket.data.principal as Principal).userId;
    // A client that left on purpose ends its session; a dropped one may come back within the window.
    ctx.track(
      RECOVERABLE.has(reason) ? ctx.engine.recovery.dropped(socket) : ctx.engine.recovery.ended(socket),
      'session update on disconnect',
      socket.id,
    );
    ctx.track(ctx.presence.disconnected(socket.nsp.name, userId, socket.id), 'presence disconnect', socket.id);
    const rooms = (socket as unknown as WithRooms)[ROOMS] ?? [];
    if (!rooms.length) return;
    if (RECOVERABLE.has(reason) && cfg.presenceGraceMs > 0) {
      // The connection dropped and may come back (recovered) within the grace period, like
      // presence: the memberships stay, parked, so the rooms see no user-left/user-joined blip.
      ctx.track(
        ctx.engine.rooms.parkRooms(socket.nsp.name, socket.id, ctx.pod, rooms, Date.now() + cfg.presenceGraceMs),
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
    expireWithToken(socket, p);
    socket.join(userRoom(p.userId));
    socket.onAny(admin ? dispatch.admin : dispatch.client);
    socket.on('disconnecting', onDisconnecting);
    socket.on('disconnect', onDisconnect);
    if (admin) return;

    ctx.track(ctx.presence.connected(socket.nsp.name, p.userId, socket.id), 'presence connect', socket.id);
    if (socket.recovered) resumed(ctx, socket, p);
    else {
      // The session starts once the user's own room reaches this pod; `session` then carries the
      // socket's first offset (through the adapter: recovery works from the very first event).
      const start = ctx.engine.recovery
        .started(socket, [userRoom(p.userId)])
        .then(() => broadcast(socket.nsp, { rooms: [socket.id] }, 'session', { userId: p.userId, recovered: false }));
      ctx.track(start, 'session start', socket.id);
    }
    replayInbox(ctx, socket).catch((e) => {
      metrics.redisErrors.inc({ op: 'inbox_replay' });
      logger.debug({ err: (e as Error).message, sid: socket.id }, 'inbox replay failed; the client gets it on its next connect');
    });
  };
}
