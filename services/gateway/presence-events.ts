import type { Socket } from 'socket.io';
import { presenceRoom } from '../core/presence/store';
import { userIdListSchema } from '../core/schemas';
import type { GatewayContext } from './context';
import { Handler, parse } from './events';

async function lookup(ctx: GatewayContext, socket: Socket, raw: unknown) {
  const ids = [...new Set(parse(userIdListSchema, raw))];
  ctx.requireAvailable();
  return { users: await ctx.engine.presence.get(socket.nsp.name, ids) };
}

/** `get-presence`, `presence:subscribe`, `presence:unsubscribe` (PROTOCOL.md, Presence). */
export const presenceHandlers: Record<string, Handler> = {
  'get-presence': lookup,
  async 'presence:subscribe'(ctx, socket, raw) {
    const ids = [...new Set(parse(userIdListSchema, raw))];
    ctx.requireAvailable();
    // Join before reading: a transition in between arrives as an event, never falls in a gap.
    socket.join(ids.map(presenceRoom));
    ctx.persistSession(socket);
    return { users: await ctx.engine.presence.get(socket.nsp.name, ids) };
  },
  async 'presence:unsubscribe'(ctx, socket, raw) {
    const ids = parse(userIdListSchema, raw);
    for (const id of ids) socket.leave(presenceRoom(id));
    ctx.persistSession(socket);
    return {};
  },
};
