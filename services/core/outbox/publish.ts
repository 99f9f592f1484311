import { randomUUID } from 'crypto';
import type { Server } from 'socket.io';
import { z } from 'zod';
import { broadcast } from '../adapter/broadcast';
import type { InboxStore } from '../inbox/store';
import type { Config } from '../platform/config';
import { GatewayError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import { clientRoom, DIRECT_SCOPE, isReservedRoom, PUBLISH_ID_RE, PUBLISH_SCOPE_RE, scopedPublishId, userRoom } from '../redis/keys';
import { eventNameSchema, payloadBytes, roomIdSchema, userIdSchema, zodMessage } from '../schemas';

/** A validated backend publish (PROTOCOL.md, Backend publish API). */
export interface Publish {
  id: string;
  namespace: string;
  target: { kind: 'all' } | { kind: 'rooms'; rooms: string[] } | { kind: 'user'; userId: string };
  event: string;
  data: unknown;
  timestamp: number;
  traceparent?: string;
  /**
   * Idempotency scope of `id` (keys.ts PUBLISH_SCOPE_RE): a digest of the API key the request came
   * with; unset (DIRECT_SCOPE) for entries backends XADD themselves. Never sent to clients.
   */
  scope?: string;
}

const bodySchema = z
  .object({
    namespace: z.string().optional(),
    room: roomIdSchema.optional(),
    rooms: z.array(roomIdSchema).min(1).max(100).optional(),
    userId: userIdSchema.optional(),
    event: eventNameSchema,
    data: z.unknown(),
    id: z.string().regex(PUBLISH_ID_RE, 'ids are 1-128 chars of [A-Za-z0-9_.:-]').optional(),
  })
  .strict();

/** Validates a publish body (API or outbox entry); throws bad_request or too_large. */
export function validatePublish(body: unknown, cfg: Pick<Config, 'workspacePattern' | 'maxMessageBytes'>): Publish {
  const r = bodySchema.safeParse(body);
  if (!r.success) throw new GatewayError('bad_request', zodMessage(r.error));
  const b = r.data;
  if (!('data' in (body as object))) throw new GatewayError('bad_request', 'data: required (use null for none)');
  const targets = [b.room, b.rooms, b.userId].filter((x) => x !== undefined).length;
  if (targets > 1) throw new GatewayError('bad_request', 'give at most one of room, rooms, userId');
  const namespace = b.namespace ?? '/';
  if (namespace !== '/' && !cfg.workspacePattern.test(namespace))
    throw new GatewayError('bad_request', `namespace: "${namespace.slice(0, 140)}" is not "/" nor a workspace namespace`);
  const rooms = b.room ? [b.room] : b.rooms ? [...new Set(b.rooms)] : undefined;
  if (rooms?.some(isReservedRoom)) throw new GatewayError('bad_request', 'rooms starting with user:, presence: or _ are reserved');
  if (payloadBytes(undefined, b.data) > cfg.maxMessageBytes)
    throw new GatewayError('too_large', `data exceeds ${cfg.maxMessageBytes} bytes`);
  return {
    id: b.id ?? randomUUID(),
    namespace,
    target: rooms ? { kind: 'rooms', rooms } : b.userId ? { kind: 'user', userId: b.userId } : { kind: 'all' },
    event: b.event,
    data: b.data,
    timestamp: Date.now(),
  };
}

/**
 * The outbox entry format (also for backends that XADD directly): flat fields
 * `id`, `namespace`, `room` | `rooms` (JSON array) | `userId`, `event`, `data` (JSON), `ts`, `traceparent`,
 * and `scope` (the idempotency scope, written by the publish API).
 */
export function encodeEntry(p: Publish): string[] {
  const f = ['id', p.id, 'namespace', p.namespace, 'event', p.event, 'data', JSON.stringify(p.data ?? null), 'ts', String(p.timestamp)];
  if (p.target.kind === 'rooms') f.push('rooms', JSON.stringify(p.target.rooms));
  if (p.target.kind === 'user') f.push('userId', p.target.userId);
  if (p.traceparent) f.push('traceparent', p.traceparent);
  if (p.scope) f.push('scope', p.scope);
  return f;
}

/** Parses and validates an outbox entry; throws with a reason when it is malformed. */
export function decodeEntry(entryId: string, fields: string[], cfg: Pick<Config, 'workspacePattern' | 'maxMessageBytes'>): Publish {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i], fields[i + 1]);
  const json = (k: string) => {
    const v = m.get(k);
    if (v === undefined) return undefined;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      throw new GatewayError('bad_request', `field ${k} is not valid JSON`);
    }
  };
  const body: Record<string, unknown> = { event: m.get('event'), data: m.has('data') ? json('data') : null };
  if (m.has('namespace')) body.namespace = m.get('namespace');
  if (m.has('room')) body.room = m.get('room');
  if (m.has('rooms')) body.rooms = json('rooms');
  if (m.has('userId')) body.userId = m.get('userId');
  body.id = m.get('id') ?? `outbox-${entryId}`;
  const p = validatePublish(body, cfg);
  const ts = Number(m.get('ts'));
  p.timestamp = Number.isFinite(ts) && ts > 0 ? ts : Number(entryId.split('-')[0]);
  p.traceparent = m.get('traceparent');
  const scope = m.get('scope');
  if (scope !== undefined && !PUBLISH_SCOPE_RE.test(scope)) throw new GatewayError('bad_request', 'field scope: 1-16 chars of [0-9a-z]');
  p.scope = scope;
  return p;
}

/** Delivers one publish: rooms/all through the adapter (every pod), a user through the inbox then live. */
export async function deliver(io: Server, inbox: InboxStore, p: Publish, metrics: Metrics): Promise<void> {
  const nsp = io.of(p.namespace);
  const origin = { ts: p.timestamp, kind: 'publish' };
  if (p.target.kind === 'user') {
    const { appended } = await inbox.append(
      p.namespace,
      p.target.userId,
      { kind: 'publish', event: p.event, data: p.data, publishId: p.id, timestamp: p.timestamp, traceparent: p.traceparent },
      // de-duplicated within the scope of the key that published it; the client sees the backend's id as it was sent
      scopedPublishId(p.scope ?? DIRECT_SCOPE, p.id),
    );
    if (appended) metrics.inboxAppends.inc({ kind: 'publish' });
    await broadcast(nsp, { rooms: [userRoom(p.target.userId)], origin }, p.event, p.data);
  } else {
    await broadcast(nsp, { rooms: p.target.kind === 'rooms' ? p.target.rooms.map(clientRoom) : [], origin }, p.event, p.data);
  }
  metrics.deliveries.inc({ target: p.target.kind });
}

/** Where accepted publishes go: the Redis outbox stream, or (single node) straight to delivery. */
export interface Outbox {
  /** Resolves once the publish is durable; `duplicate` when its id was seen within the window. */
  publish(p: Publish): Promise<{ id: string; duplicate: boolean }>;
}
