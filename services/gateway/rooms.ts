import { randomUUID } from 'crypto';
import type { Socket } from 'socket.io';
import { mayJoinRoom, Principal } from '../core/auth/auth';
import { broadcast } from '../core/adapter';
import { GatewayError } from '../core/platform/errors';
import { isReservedRoom } from '../core/redis/keys';
import { messageSchema, payloadBytes, roomIdSchema } from '../core/schemas';
import { Handler, parse } from './events';
import type { GatewayContext } from './context';

/** Checks that the principal may use `room` (syntax, reserved prefixes, `rooms` claim). */
export function checkRoom(p: Principal, raw: unknown): string {
  const room = parse(roomIdSchema, raw);
  if (isReservedRoom(room)) throw new GatewayError('forbidden', `room "${room}" is reserved`);
  if (!mayJoinRoom(p, room)) throw new GatewayError('forbidden', `your token does not allow room "${room}"`);
  return room;
}

/** Rooms a client joined (not its own socket room nor the private user room). */
export function clientRooms(socket: Socket): string[] {
  return [...socket.rooms].filter((r) => r !== socket.id && !isReservedRoom(r));
}

/** Announces `user-left` when a membership change removed the user's last socket. */
export async function announceLeave(ctx: GatewayContext, socket: Socket, room: string, userId: string): Promise<void> {
  const change = await ctx.engine.rooms.roomLeave(socket.nsp.name, room, socket.id, ctx.cfg.podName);
  if (change.changed) await broadcast(socket.nsp, { rooms: [room] }, 'user-left', { room, userId, timestamp: Date.now() });
}

/** Records a (re-)joined room in the store and announces `user-joined` for the user's first socket. */
export async function recordJoin(ctx: GatewayContext, socket: Socket, room: string, userId: string): Promise<number> {
  const change = await ctx.engine.rooms.roomJoin(socket.nsp.name, room, socket.id, userId, ctx.cfg.podName);
  if (change.changed)
    await broadcast(socket.nsp, { rooms: [room], except: [socket.id] }, 'user-joined', { room, userId, timestamp: Date.now() });
  return change.members;
}

const principal = (socket: Socket) => socket.data.principal as Principal;

/** The room and message events of PROTOCOL.md (in `/` and workspace namespaces). */
export const roomHandlers: Record<string, Handler> = {
  async 'join-room'(ctx, socket, raw) {
    const p = principal(socket);
    const room = checkRoom(p, raw);
    ctx.requireAvailable();
    const members = await recordJoin(ctx, socket, room, p.userId);
    socket.join(room);
    ctx.persistSession(socket);
    // Sent through the adapter so that it carries a stream offset (recovery resumes after the join).
    broadcast(socket.nsp, { rooms: [socket.id] }, 'joined', { room }).catch(() => socket.emit('joined', { room }));
    return { room, members };
  },

  async 'leave-room'(ctx, socket, raw) {
    const room = parse(roomIdSchema, raw);
    if (isReservedRoom(room)) throw new GatewayError('forbidden', `room "${room}" is reserved`);
    if (socket.rooms.has(room)) {
      ctx.requireAvailable();
      socket.leave(room);
      ctx.persistSession(socket);
      await announceLeave(ctx, socket, room, principal(socket).userId);
    }
    return { room };
  },

  async message(ctx, socket, raw) {
    const p = principal(socket);
    const m = parse(messageSchema, raw);
    const rooms = [...new Set(m.roomIds ?? [m.roomId as string])];
    for (const r of rooms) checkRoom(p, r);
    if (payloadBytes(m.text, m.data) > ctx.cfg.maxMessageBytes)
      throw new GatewayError('too_large', `text + data exceed ${ctx.cfg.maxMessageBytes} bytes`);
    ctx.requireAvailable();
    const id = randomUUID();
    const timestamp = Date.now();
    const base = { id, userId: p.userId, text: m.text, data: m.data, timestamp };
    const except = m.exceptSender ? [socket.id] : [];
    // One broadcast per room, each excluding the rooms before it: every recipient gets the
    // message once, naming the first target room it is in.
    const origin = { ts: timestamp, kind: 'room' };
    for (let i = 0; i < rooms.length; i++) {
      await broadcast(
        socket.nsp,
        { rooms: [rooms[i]], except: i ? [...except, ...rooms.slice(0, i)] : except, volatile: m.volatile, origin },
        'message',
        { ...base, room: rooms[i] },
      );
    }
    ctx.metrics.messagesPublished.inc({ kind: 'room' });
    return { id, timestamp };
  },

  async 'get-room-members'(ctx, socket, raw) {
    const room = checkRoom(principal(socket), raw);
    ctx.requireAvailable();
    const members = await ctx.engine.rooms.roomMembers(socket.nsp.name, room);
    return { room, count: members.length, members };
  },
};
