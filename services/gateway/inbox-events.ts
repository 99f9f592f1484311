import type { Socket } from 'socket.io';
import type { Principal } from '../core/auth/auth';
import { broadcast } from '../core/adapter/broadcast';
import { GatewayError } from '../core/platform/errors';
import { clientView, InboxMessage } from '../core/inbox/store';
import { userRoom } from '../core/redis/keys';
import { directMessageSchema, inboxAckSchema, payloadBytes, streamIdSchema } from '../core/schemas';
import { waitBelow } from './backpressure';
import type { GatewayContext } from './context';
import { Handler, parse } from './events';
import { spendWriteBudget } from './limits';

const BATCH = 100;
/** Bytes an inbox entry costs beyond its payload: counted against the sender's write budget. */
const DIRECT_OVERHEAD = 200;

/** Sends every inbox message after the client's position as `queued-messages` batches, oldest first, paced by the socket's buffer. */
export async function replayInbox(ctx: GatewayContext, socket: Socket): Promise<number> {
  const p = socket.data.principal as Principal;
  const since = (socket.handshake.auth as Record<string, unknown> | undefined)?.inboxSince;
  const inbox = ctx.engine.inbox;
  const nsp = socket.nsp.name;
  let after =
    typeof since === 'string' && streamIdSchema.safeParse(since).success ? since : ((await inbox.position(nsp, p.userId)) ?? '0-0');
  ctx.metrics.inboxReplays.inc();
  let sent = 0;
  for (;;) {
    const rows = await inbox.range(nsp, p.userId, after, BATCH + 1);
    const batch = rows.slice(0, BATCH);
    const more = rows.length > BATCH;
    if (!socket.connected) return sent;
    // Through the adapter, awaited: once it resolves the batch sits in the socket's buffer, so
    // the pacing below sees it (a plain emit with recovery on is an asynchronous publish too).
    await broadcast(socket.nsp, { rooms: [socket.id] }, 'queued-messages', {
      messages: batch.map((r) => clientView(r.id, r.message)),
      more,
    });
    sent += batch.length;
    ctx.metrics.inboxReplayed.inc(batch.length);
    if (!more) return sent;
    after = batch[batch.length - 1].id;
    // Never push a replay past the slow-consumer mark: wait for the client to read.
    if (!(await waitBelow(socket, ctx.cfg.outboundSoftBytes / 2))) return sent;
  }
}

/** `direct-message` and `inbox:ack` (PROTOCOL.md, Direct messages); the replay runs on connect (replayInbox). */
export const inboxHandlers: Record<string, Handler> = {
  async 'direct-message'(ctx, socket, raw) {
    const p = socket.data.principal as Principal;
    const m = parse(directMessageSchema, raw);
    const bytes = payloadBytes(m.text, m.data);
    if (bytes > ctx.cfg.maxMessageBytes) throw new GatewayError('too_large', `text + data exceed ${ctx.cfg.maxMessageBytes} bytes`);
    ctx.requireAvailable();
    // Inboxes are for users of this namespace: one nobody ever connected as gets nothing written.
    const [seen] = await ctx.engine.presence.get(socket.nsp.name, [m.toUserId]);
    if (seen.lastSeen === null)
      throw new GatewayError('not_found', `user ${JSON.stringify(m.toUserId.slice(0, 64))} never connected to this namespace`);
    spendWriteBudget(ctx, socket, bytes + DIRECT_OVERHEAD);
    const message: InboxMessage = { kind: 'direct', from: p.userId, text: m.text, data: m.data, timestamp: Date.now() };
    // Durable first: the sender's ack means the message survives the loss of any pod.
    const { id } = await ctx.engine.inbox.append(socket.nsp.name, m.toUserId, message);
    ctx.metrics.inboxAppends.inc({ kind: 'direct' });
    ctx.metrics.messagesPublished.inc({ kind: 'direct' });
    // Live delivery is best effort: a recipient who misses it gets it from the inbox on connect.
    await broadcast(
      socket.nsp,
      { rooms: [userRoom(m.toUserId)], origin: { ts: message.timestamp, kind: 'direct' } },
      'direct-message',
      clientView(id, message),
    ).catch((e) => ctx.logger.debug({ err: (e as Error).message }, 'live delivery of a direct message failed; the inbox keeps it'));
    return { id, timestamp: message.timestamp };
  },
  async 'inbox:ack'(ctx, socket, raw) {
    const { upTo } = parse(inboxAckSchema, raw);
    ctx.requireAvailable();
    return { upTo: await ctx.engine.inbox.ack(socket.nsp.name, (socket.data.principal as Principal).userId, upTo) };
  },
};
