import { createHash, timingSafeEqual } from 'crypto';
import type http from 'http';
import type { Config } from '../platform/config';
import { GatewayError, httpStatus, toWire } from '../platform/errors';
import { closeAfterAnswer, readBody, RequestAborted, sendJson } from '../platform/http';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { contextFrom, inSpan, SpanKind, traceparentOf } from '../platform/telemetry';
import { validatePublish, type Outbox } from './publish';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * Constant-time check of a bearer key against the configured keys: the idempotency scope of the key
 * that matched (a short digest of it, never the key), or undefined.
 */
export function checkApiKey(header: string | undefined, keys: string[]): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const got = digest(m[1]);
  let scope: string | undefined;
  for (const k of keys) {
    const d = digest(k);
    if (timingSafeEqual(got, d)) scope ??= keyScope(d);
  }
  return scope;
}

/** The idempotency scope of an API key: 12 hex digits of its SHA-256 (ids of different keys never meet). */
function keyScope(keyDigest: Buffer): string {
  return keyDigest.subarray(0, 6).toString('hex');
}

/** `POST /api/v1/publish` (gateway and worker): returns true when it handled the request. */
export function publishRoute(cfg: Config, outbox: Outbox, metrics: Metrics, logger: Logger) {
  const limit = Math.max(cfg.maxMessageBytes + 4096, 8192);
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = (req.url ?? '').split('?')[0];
    if (url !== '/api/v1/publish') return false;
    // A backend's own trace (traceparent header) continues through the outbox to the sockets.
    const parent = contextFrom(typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined);
    await inSpan(
      'POST /api/v1/publish',
      { kind: SpanKind.SERVER, parent, attributes: { 'http.request.method': req.method ?? '', 'url.path': url } },
      async (span) => {
        await handlePublish(req, res, cfg, outbox, metrics, logger, limit);
        span.setAttribute('http.response.status_code', res.statusCode);
      },
    );
    return true;
  };
}

async function handlePublish(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  cfg: Config,
  outbox: Outbox,
  metrics: Metrics,
  logger: Logger,
  limit: number,
): Promise<void> {
  const reply = (status: number, body: unknown) => {
    metrics.publishRequests.inc({ status: String(status) });
    closeAfterAnswer(req, res); // answered before the body was read (401, 405, 413): a trickling body cannot hold the connection
    sendJson(res, status, body);
  };
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    reply(405, { error: { code: 'bad_request', message: 'use POST' } });
    return;
  }
  // The key is checked on the headers alone: a bad one is answered at once, the body never read.
  const scope = cfg.apiKeys.length ? checkApiKey(req.headers.authorization, cfg.apiKeys) : undefined;
  if (!scope) {
    reply(401, {
      error: {
        code: 'unauthorized',
        message: cfg.apiKeys.length ? 'missing or invalid API key (Authorization: Bearer <key>)' : 'the publish API is off: set API_KEYS',
      },
    });
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
    p.scope = scope;
    p.traceparent = traceparentOf();
    const { id } = await outbox.publish(p);
    reply(202, { id });
  } catch (e) {
    if (e instanceof RequestAborted) {
      // Not an error of ours: the client went away mid-body (499, nginx's "client closed request"), or the request timeout cut it (408).
      metrics.publishRequests.inc({ status: e.timedOut ? '408' : '499' });
      logger.debug({ err: e.message }, 'publish request ended before its body');
      return;
    }
    const error = toWire(e);
    if (error.code === 'internal') logger.error({ err: (e as Error).message }, 'publish failed');
    reply(httpStatus(error.code), { error });
  }
}
