import type { Socket } from 'socket.io';
import { mayReadPresence, type Principal } from '../core/auth/auth';
import { GatewayError } from '../core/platform/errors';
import { presenceRoom } from '../core/presence/store';
import { userIdListSchema } from '../core/schemas';
import type { GatewayContext } from './context';
import { Handler, parse } from './events';
import { checkPresenceCap } from './limits';

/** The ids of a lookup or subscription, each allowed by the token's `presence` claim. */
function allowedIds(socket: Socket, raw: unknown): string[] {
  const ids = [...new Set(parse(userIdListSchema, raw))];
  const p = socket.data.principal as Principal;
  const denied = ids.find((id) => !mayReadPresence(p, id));
  if (denied !== undefined)
    throw new GatewayError('forbidden', `your token does not allow the presence of ${JSON.stringify(denied.slice(0, 64))}`);
  return ids;
}

async function lookup(ctx: GatewayContext, socket: Socket, raw: unknown) {
  const ids = allowedIds(socket, raw);
  ctx.requireAvailable();
  return { users: await ctx.engine.presence.get(socket.nsp.name, ids) };
}

/** `get-presence`, `presence:subscribe`, `presence:unsubscribe` (PROTOCOL.md, Presence). */
export const presenceHandlers: Record<string, Handler> = {
  'get-presence': lookup,
  async 'presence:subscribe'(ctx, socket, raw) {
    const ids = allowedIds(socket, raw);
    ctx.requireAvailable();
    // Join (and wait until the transitions reach this pod) before reading: a transition in
    // between arrives as an event, never falls in a gap.
    const rooms = ids.map(presenceRoom);
    checkPresenceCap(ctx, socket, rooms);
    socket.join(rooms);
    await ctx.engine.recovery.joined(socket, rooms);
    return { users: await ctx.engine.presence.get(socket.nsp.name, ids) };
  },
  async 'presence:unsubscribe'(ctx, socket, raw) {
    const rooms = parse(userIdListSchema, raw).map(presenceRoom);
    for (const r of rooms) socket.leave(r);
    await ctx.engine.recovery.left(socket, rooms);
    return {};
  },
};
