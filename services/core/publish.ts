import { randomUUID, createHash, timingSafeEqual } from 'crypto';
import type http from 'http';
import type { Server } from 'socket.io';
import { z } from 'zod';
import type { Config } from './config';
import { broadcast } from './engine';
import { GatewayError, httpStatus, isRedisDown, UnavailableError } from './errors';
import type { InboxStore } from './inbox';
import { isReservedRoom, Keys, PUBLISH_ID_RE, userRoom } from './keys';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { RedisClient } from './redis';
import { contextFrom, inSpan, SpanKind, traceparentOf } from './telemetry';
import { sendJson } from './http';
import { eventNameSchema, payloadBytes, roomIdSchema, userIdSchema, zodMessage } from './schemas';

/** A validated backend publish (PROTOCOL.md, Backend publish API). */
export interface Publish {
  id: string;
  namespace: string;
  target: { kind: 'all' } | { kind: 'rooms'; rooms: string[] } | { kind: 'user'; userId: string };
  event: string;
  data: unknown;
  timestamp: number;
  traceparent?: string;
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
  if (namespace !== '/' && !cfg.workspacePattern.test(namespace)) throw new GatewayError('bad_request', `namespace: "${namespace.slice(0, 140)}" is not "/" nor a workspace namespace`);
  const rooms = b.room ? [b.room] : b.rooms ? [...new Set(b.rooms)] : undefined;
  if (rooms?.some(isReservedRoom)) throw new GatewayError('bad_request', 'rooms starting with user:, presence: or _ are reserved');
  if (payloadBytes(undefined, b.data) > cfg.maxMessageBytes) throw new GatewayError('too_large', `data exceeds ${cfg.maxMessageBytes} bytes`);
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
 * `id`, `namespace`, `room` | `rooms` (JSON array) | `userId`, `event`, `data` (JSON), `ts`, `traceparent`.
 */
export function encodeEntry(p: Publish): string[] {
  const f = ['id', p.id, 'namespace', p.namespace, 'event', p.event, 'data', JSON.stringify(p.data ?? null), 'ts', String(p.timestamp)];
  if (p.target.kind === 'rooms') f.push('rooms', JSON.stringify(p.target.rooms));
  if (p.target.kind === 'user') f.push('userId', p.target.userId);
  if (p.traceparent) f.push('traceparent', p.traceparent);
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
  return p;
}

/** Delivers one publish: rooms/all through the adapter (every pod), a user through the inbox then live. */
export async function deliver(io: Server, inbox: InboxStore, p: Publish, metrics: Metrics): Promise<void> {
  const nsp = io.of(p.namespace);
  const origin = { ts: p.timestamp, kind: 'publish' };
  if (p.target.kind === 'user') {
    const { appended } = await inbox.append(p.namespace, p.target.userId, { kind: 'publish', event: p.event, data: p.data, publishId: p.id, timestamp: p.timestamp, traceparent: p.traceparent }, p.id);
    if (appended) metrics.inboxAppends.inc({ kind: 'publish' });
    await broadcast(nsp, { rooms: [userRoom(p.target.userId)], origin }, p.event, p.data);
  } else {
    await broadcast(nsp, { rooms: p.target.kind === 'rooms' ? p.target.rooms : [], origin }, p.event, p.data);
  }
  metrics.deliveries.inc({ target: p.target.kind });
}

/** Where accepted publishes go: the Redis outbox stream, or (single node) straight to delivery. */
export interface Outbox {
  /** Resolves once the publish is durable; `duplicate` when its id was seen within the window. */
  publish(p: Publish): Promise<{ id: string; duplicate: boolean }>;
}

type Scripted = RedisClient & { outboxPublish(stream: string, idem: string, window: number, ...fields: string[]): Promise<[string, number]> };

/** The Redis outbox: one stream drained by the workers' consumer group. */
export class RedisOutbox implements Outbox {
  constructor(private client: RedisClient, private keys: Keys, private windowMs: number) {}
  async publish(p: Publish): Promise<{ id: string; duplicate: boolean }> {
    if (this.client.status !== 'ready') throw new UnavailableError();
    const k = this.keys.outbox();
    const [, appended] = await (this.client as Scripted).outboxPublish(k.stream, k.idem(p.id), this.windowMs, ...encodeEntry(p));
    return { id: p.id, duplicate: appended === 0 };
  }
}

/** The single-node outbox: no Redis, so a publish is delivered in process before it is acknowledged. */
export class DirectOutbox implements Outbox {
  private seen = new Map<string, number>();
  constructor(private io: Server, private inbox: InboxStore, private metrics: Metrics, private windowMs: number) {}
  async publish(p: Publish): Promise<{ id: string; duplicate: boolean }> {
    const now = Date.now();
    for (const [k, at] of this.seen) if (now - at > this.windowMs) this.seen.delete(k);
    if (this.seen.has(p.id)) return { id: p.id, duplicate: true };
    await deliver(this.io, this.inbox, p, this.metrics);
    this.seen.set(p.id, now);
    return { id: p.id, duplicate: false };
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time check of a bearer key against the configured keys. */
export function checkApiKey(header: string | undefined, keys: string[]): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return false;
  const got = digest(m[1]);
  let ok = false;
  for (const k of keys) ok = timingSafeEqual(got, digest(k)) || ok;
  return ok;
}

/** Reads a request body up to `limit` bytes; rejects with too_large beyond it. */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      return reject(new GatewayError('too_large', `body exceeds ${limit} bytes`));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new GatewayError('too_large', `body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** `POST /api/v1/publish` (gateway and worker): returns true when it handled the request. */
export function publishRoute(cfg: Config, outbox: Outbox, metrics: Metrics, logger: Logger) {
  const limit = Math.max(cfg.maxMessageBytes + 4096, 8192);
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = (req.url ?? '').split('?')[0];
    if (url !== '/api/v1/publish') return false;
    // A backend's own trace (traceparent header) continues through the outbox to the sockets.
    const parent = contextFrom(typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined);
    await inSpan('POST /api/v1/publish', { kind: SpanKind.SERVER, parent, attributes: { 'http.request.method': req.method ?? '', 'url.path': url } }, async (span) => {
      await handlePublish(req, res, cfg, outbox, metrics, logger, limit);
      span.setAttribute('http.response.status_code', res.statusCode);
    });
    return true;
  };
}

async function handlePublish(req: http.IncomingMessage, res: http.ServerResponse, cfg: Config, outbox: Outbox, metrics: Metrics, logger: Logger, limit: number): Promise<void> {
  const reply = (status: number, body: unknown) => {
    metrics.publishRequests.inc({ status: String(status) });
    sendJson(res, status, body);
  };
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    reply(405, { error: { code: 'bad_request', message: 'use POST' } });
    return;
  }
  if (!cfg.apiKeys.length || !checkApiKey(req.headers.authorization, cfg.apiKeys)) {
    req.resume();
    reply(401, { error: { code: 'unauthorized', message: cfg.apiKeys.length ? 'missing or invalid API key (Authorization: Bearer <key>)' : 'the publish API is off: set API_KEYS' } });
    return;
  }
  try {
    const raw = await readBody(req, limit);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new GatewayError('bad_request', 'body is not valid JSON');
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new GatewayError('bad_request', 'body must be a JSON object');
    const p = validatePublish(body, cfg);
    p.traceparent = traceparentOf();
    const { id } = await outbox.publish(p);
    reply(202, { id });
  } catch (e) {
    if (e instanceof GatewayError) reply(httpStatus(e.code), { error: { code: e.code, message: e.message } });
    else {
      const down = isRedisDown(e);
      if (!down) logger.error({ err: (e as Error).message }, 'publish failed');
      reply(down ? 503 : 500, { error: { code: down ? 'unavailable' : 'internal', message: down ? 'Redis is unavailable, retry later' : 'internal error' } });
    }
  }
}
