import type { Socket } from 'socket.io';
import { GatewayError, LimitError } from '../core/platform/errors';
import { clientRoomId } from '../core/redis/keys';
import { PRESENCE_PREFIX } from '../core/presence/store';
import type { GatewayContext } from './context';
import { TokenBucket } from './rate-limit';

/**
 * What one socket may cost (ARCHITECTURE.md rule 10): caps on what it holds (rooms, presence
 * subscriptions, rooms per message) answered `limit_exceeded`, and a budget of bytes per second it
 * may make the cluster write (a message to 16 rooms counts 16 times), answered `rate_limited`.
 */

/** A socket's write budget (a symbol: it never travels in the recovery session). */
const BUDGET = Symbol('write-budget');

/** Spends `bytes` of the socket's write budget, or refuses the request `rate_limited`. */
export function spendWriteBudget(ctx: GatewayContext, socket: Socket, bytes: number): void {
  const rate = ctx.cfg.writeBudgetBytesPerSecond;
  if (rate <= 0) return;
  const s = socket as unknown as { [BUDGET]?: TokenBucket };
  const bucket = (s[BUDGET] ??= new TokenBucket(rate, ctx.cfg.writeBurstBytes));
  if (bucket.take(Date.now(), bytes)) return;
  ctx.metrics.rateLimited.inc({ scope: 'bytes' });
  throw new GatewayError('rate_limited', `more than ${rate} bytes per second written for this socket; slow down`);
}

/** Client rooms the socket is in now. */
function roomCount(socket: Socket): number {
  let n = 0;
  for (const r of socket.rooms) if (clientRoomId(r) !== undefined) n++;
  return n;
}

/** Presence subscriptions the socket holds now. */
function presenceCount(socket: Socket): number {
  let n = 0;
  for (const r of socket.rooms) if (r.startsWith(PRESENCE_PREFIX)) n++;
  return n;
}

/** A join of `room` (not joined yet) must stay within MAX_ROOMS_PER_SOCKET. */
export function checkRoomCap(ctx: GatewayContext, socket: Socket, joining: string): void {
  if (socket.rooms.has(joining)) return;
  const max = ctx.cfg.maxRoomsPerSocket;
  if (roomCount(socket) >= max)
    throw new LimitError('rooms', `a socket may be in at most ${max} rooms (MAX_ROOMS_PER_SOCKET); leave one first`);
}

/** Subscribing `rooms` (presence rooms) must stay within MAX_PRESENCE_SUBSCRIPTIONS. */
export function checkPresenceCap(ctx: GatewayContext, socket: Socket, rooms: string[]): void {
  const max = ctx.cfg.maxPresenceSubscriptions;
  const fresh = rooms.filter((r) => !socket.rooms.has(r)).length;
  if (presenceCount(socket) + fresh > max)
    throw new LimitError(
      'presence_subscriptions',
      `a socket may subscribe to at most ${max} users (MAX_PRESENCE_SUBSCRIPTIONS); unsubscribe first`,
    );
}

/** A message's target rooms must stay within MAX_ROOM_IDS. */
export function checkRoomIdsCap(ctx: GatewayContext, n: number): void {
  const max = ctx.cfg.maxRoomIds;
  if (n > max) throw new LimitError('room_ids', `a message may target at most ${max} rooms (MAX_ROOM_IDS)`);
}
