import { z } from 'zod';
import { GatewayError } from './platform/errors';
import { ROOM_ID_RE, USER_ID_RE, USER_ID_RULE } from './redis/keys';

/** Event names a backend or admin may emit: no Socket.IO reserved names. */
export const EVENT_NAME_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
export const RESERVED_EVENTS = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
  'error',
]);

export const roomIdSchema = z.string().regex(ROOM_ID_RE, 'room ids are 1-128 chars of [A-Za-z0-9_.:-]');
const USER_ID_MESSAGE = `user ids are ${USER_ID_RULE}`;
export const userIdSchema = z.string().regex(USER_ID_RE, USER_ID_MESSAGE);
export const eventNameSchema = z
  .string()
  .regex(EVENT_NAME_RE, 'event names are 1-64 chars of [A-Za-z0-9_.:-]')
  .refine((e) => !RESERVED_EVENTS.has(e), 'reserved event name');
/** A Redis stream id ("<ms>-<seq>"). */
export const streamIdSchema = z.string().regex(/^\d{1,20}-\d{1,20}$/, 'a message id like "1700000000000-0"');

export const messageSchema = z
  .object({
    roomId: roomIdSchema.optional(),
    // the cap that applies is MAX_ROOM_IDS (limit_exceeded); this bound is the largest it can be set to
    roomIds: z.array(roomIdSchema).min(1).max(1000).optional(),
    text: z.string().optional(),
    data: z.unknown().optional(),
    exceptSender: z.boolean().optional(),
    volatile: z.boolean().optional(),
  })
  .strict()
  .refine((m) => (m.roomId === undefined) !== (m.roomIds === undefined), 'give exactly one of roomId or roomIds');

/**
 * Up to 1,000 user ids. One plain loop instead of a zod element schema: `get-presence` checks
 * 1,000 ids per call, and this is a quarter of the cost. Issues read exactly like zod's.
 */
export const userIdListSchema = z.unknown().superRefine((v, ctx) => {
  const kind = (x: unknown) => (x === null ? 'null' : Array.isArray(x) ? 'array' : typeof x);
  if (!Array.isArray(v)) return void ctx.addIssue({ code: 'custom', message: `Expected array, received ${kind(v)}` });
  if (v.length > 1000) return void ctx.addIssue({ code: 'custom', message: 'at most 1000 user ids' });
  for (let i = 0; i < v.length; i++) {
    const id: unknown = v[i];
    if (typeof id !== 'string') return void ctx.addIssue({ code: 'custom', path: [i], message: `Expected string, received ${kind(id)}` });
    if (!USER_ID_RE.test(id)) return void ctx.addIssue({ code: 'custom', path: [i], message: USER_ID_MESSAGE });
  }
}) as unknown as z.ZodType<string[]>;

export const directMessageSchema = z.object({ toUserId: userIdSchema, text: z.string().optional(), data: z.unknown().optional() }).strict();

export const inboxAckSchema = z.object({ upTo: streamIdSchema }).strict();

export const adminBroadcastSchema = z
  .object({
    namespace: z
      .string()
      .regex(/^\/[A-Za-z0-9_.-]{0,128}$/)
      .optional(),
    room: roomIdSchema.optional(),
    event: eventNameSchema,
    data: z.unknown(),
    timeoutMs: z.number().int().min(10).max(60000).default(5000),
  })
  .strict();

export const adminDisconnectSchema = z.object({ userId: userIdSchema }).strict();

/** Formats the first zod issue as a short message. */
export function zodMessage(err: z.ZodError): string {
  const i = err.issues[0];
  if (!i) return 'invalid payload';
  const path = i.path.length ? `${i.path.join('.')}: ` : '';
  return `${path}${i.message}`;
}

/**
 * Deepest nesting of objects and arrays accepted in `data` (message, direct-message, publish). The
 * adapter's msgpack encoder (binary payloads) fails beyond 100 levels with the envelope around the
 * data; deeper data is refused `bad_request` here instead of failing as a Redis write.
 */
export const MAX_DATA_DEPTH = 32;

/** True when `data` nests objects or arrays more than `max` levels deep (binary values are leaves). */
export function nestedDeeperThan(data: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[data, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object' || Buffer.isBuffer(v) || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * JSON size in bytes of the user-supplied part of a message (unserialisable data counts as
 * infinitely large: answered too_large); throws bad_request when `data` nests deeper than
 * MAX_DATA_DEPTH levels.
 */
export function payloadBytes(text: unknown, data: unknown): number {
  let n = 0;
  if (typeof text === 'string') n += Buffer.byteLength(text);
  if (data !== undefined) {
    try {
      n += Buffer.byteLength(JSON.stringify(data) ?? '');
    } catch {
      return Infinity;
    }
    if (nestedDeeperThan(data, MAX_DATA_DEPTH)) throw new GatewayError('bad_request', `data: nested deeper than ${MAX_DATA_DEPTH} levels`);
  }
  return n;
}
