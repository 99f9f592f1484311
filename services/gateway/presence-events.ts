import type { Socket } from 'socket.io';
import { presenceRoom } from '../core/presence';
import { userIdListSchema } from '../core/schemas';
import type { GatewayContext } from './context';
import { handle, parse } from './events';
import type { SocketPlugin } from './server';

/** `get-presence`, `presence:subscribe`, `presence:unsubscribe` (PROTOCOL.md, Presence). */
export const presenceEvents: SocketPlugin = {
  events: ['get-presence', 'presence:subscribe', 'presence:unsubscribe'],
  register(ctx: GatewayContext, socket: Socket) {
    const on = (event: string, fn: (...a: unknown[]) => Promise<object>) => handle(socket, event, ctx.metrics, ctx.logger, fn);
    const lookup = async (raw: unknown) => {
      const ids = [...new Set(parse(userIdListSchema, raw))];
      ctx.requireAvailable();
      return { users: await ctx.engine.presence.get(socket.nsp.name, ids) };
    };
    on('get-presence', lookup);
    on('presence:subscribe', async (raw) => {
      const ids = [...new Set(parse(userIdListSchema, raw))];
      ctx.requireAvailable();
      // Join before reading: a transition in between arrives as an event, never falls in a gap.
      socket.join(ids.map(presenceRoom));
      ctx.persistSession(socket);
      return { users: await ctx.engine.presence.get(socket.nsp.name, ids) };
    });
    on('presence:unsubscribe', async (raw) => {
      const ids = parse(userIdListSchema, raw);
      for (const id of ids) socket.leave(presenceRoom(id));
      ctx.persistSession(socket);
      return {};
    });
  },
};
