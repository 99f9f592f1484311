import { randomUUID } from 'crypto';
import type { Namespace, Socket } from 'socket.io';
import { mayJoinRoom, mayReadPresence, Principal } from '../core/auth/auth';
import { broadcast } from '../core/adapter/broadcast';
import { GatewayError } from '../core/platform/errors';
import { clientRoom, clientRoomId, isReservedRoom, userRoom } from '../core/redis/keys';
import { PRESENCE_PREFIX } from '../core/presence/store';
import { messageSchema, payloadBytes, roomIdSchema } from '../core/schemas';
import { Handler, parse } from './events';
import { checkRoomCap, checkRoomIdsCap, spendWriteBudget } from './limits';
import type { GatewayContext } from './context';

/** Checks that the principal may use `room` (syntax, reserved prefixes, `rooms` claim). */
export function checkRoom(p: Principal, raw: unknown): string {
  const room = parse(roomIdSchema, raw);
  if (isReservedRoom(room)) throw new GatewayError('forbidden', `room "${room}" is reserved`);
  if (!mayJoinRoom(p, room)) throw new GatewayError('forbidden', `your token does not allow room "${room}"`);
  return room;
}

/** Rooms a client joined, by their client ids (not its own socket room, the user room nor presence rooms). */
export function clientRooms(socket: Socket): string[] {
  const out: string[] = [];
  for (const r of socket.rooms) {
    const id = clientRoomId(r);
    if (id !== undefined) out.push(id);
  }
  return out;
}

/**
 * The adapter rooms a principal may hold (a recovered session's rooms are checked again with the
 * new token): client rooms its `rooms` claim allows, its own user room, presence rooms of users
 * its `presence` claim allows.
 */
export function allowedRoom(p: Principal): (name: string) => boolean {
  return (name) => {
    const id = clientRoomId(name);
    if (id !== undefined) return !isReservedRoom(id) && mayJoinRoom(p, id);
    if (name === userRoom(p.userId)) return true;
    return name.startsWith(PRESENCE_PREFIX) && mayReadPresence(p, name.slice(PRESENCE_PREFIX.length));
  };
}

/** Announces `user-left` when a membership change removed the user's last socket. */
export async function announceLeave(ctx: GatewayContext, socket: Socket, room: string, userId: string): Promise<void> {
  await leaveAndAnnounce(ctx, socket.nsp, socket.id, room, userId);
}

/** Removes socket `sid`'s membership of `room` recorded on this pod; `user-left` when it was the user's last socket. */
export async function leaveAndAnnounce(ctx: GatewayContext, nsp: Namespace, sid: string, room: string, userId: string): Promise<void> {
  const change = await ctx.engine.rooms.roomLeave(nsp.name, room, sid, ctx.pod);
  if (change.changed) await broadcast(nsp, { rooms: [clientRoom(room)] }, 'user-left', { room, userId, timestamp: Date.now() });
}

/** Records a (re-)joined room in the store and announces `user-joined` for the user's first socket. */
export async function recordJoin(ctx: GatewayContext, socket: Socket, room: string, userId: string): Promise<number> {
  const change = await ctx.engine.rooms.roomJoin(socket.nsp.name, room, socket.id, userId, ctx.pod);
  if (change.changed)
    await broadcast(socket.nsp, { rooms: [clientRoom(room)], except: [socket.id] }, 'user-joined', { room, userId, timestamp: Date.now() });
  return change.members;
}

const principal = (socket: Socket) => socket.data.principal as Principal;

/** Bytes a broadcast entry costs beyond its payload (ids, routing, framing): counted against the write budget. */
const MESSAGE_OVERHEAD = 200;

/** The room and message events of PROTOCOL.md (in `/` and workspace namespaces). */
export const roomHandlers: Record<string, Handler> = {
  async 'join-room'(ctx, socket, raw) {
    const p = principal(socket);
    const room = checkRoom(p, raw);
    checkRoomCap(ctx, socket, clientRoom(room));
    ctx.requireAvailable();
    const members = await recordJoin(ctx, socket, room, p.userId);
    socket.join(clientRoom(room));
    // The room's broadcasts reach this pod (and the session records the room) before the answer.
    await ctx.engine.recovery.joined(socket, [clientRoom(room)]);
    // Through the adapter: it carries the socket's offset (recovery resumes after the join).
    await broadcast(socket.nsp, { rooms: [socket.id] }, 'joined', { room });
    return { room, members };
  },

  async 'leave-room'(ctx, socket, raw) {
    const room = parse(roomIdSchema, raw);
    if (isReservedRoom(room)) throw new GatewayError('forbidden', `room "${room}" is reserved`);
    if (socket.rooms.has(clientRoom(room))) {
      ctx.requireAvailable();
      socket.leave(clientRoom(room));
      await ctx.engine.recovery.left(socket, [clientRoom(room)]);
      await announceLeave(ctx, socket, room, principal(socket).userId);
    }
    return { room };
  },

  async message(ctx, socket, raw) {
    const p = principal(socket);
    const m = parse(messageSchema, raw);
    const rooms = [...new Set(m.roomIds ?? [m.roomId as string])];
    checkRoomIdsCap(ctx, rooms.length);
    for (const r of rooms) checkRoom(p, r);
    const bytes = payloadBytes(m.text, m.data);
    if (bytes > ctx.cfg.maxMessageBytes) throw new GatewayError('too_large', `text + data exceed ${ctx.cfg.maxMessageBytes} bytes`);
    ctx.requireAvailable();
    // what this message makes the cluster write: its payload once per target room
    spendWriteBudget(ctx, socket, (bytes + MESSAGE_OVERHEAD) * rooms.length);
    const id = randomUUID();
    const timestamp = Date.now();
    const base = { id, userId: p.userId, text: m.text, data: m.data, timestamp };
    const except = m.exceptSender ? [socket.id] : [];
    // One broadcast per room, each excluding the rooms before it: every recipient gets the
    // message once, naming the first target room it is in.
    const origin = { ts: timestamp, kind: 'room' };
    const targets = rooms.map(clientRoom);
    await Promise.all(
      rooms.map((room, i) =>
        broadcast(
          socket.nsp,
          { rooms: [targets[i]], except: [...except, ...targets.slice(0, i)], volatile: m.volatile, origin },
          'message',
          { ...base, room },
        ),
      ),
    );
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
