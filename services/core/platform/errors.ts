/**
 * Every error that reaches a client or a backend, and the one mapping from an error to what the
 * wire carries: ack bodies (`{ ok: false, error }`), `request-error` events, HTTP answers and
 * handshake refusals (`connect_error` with `err.data`) all go through `toWire`.
 */

/** Error codes of PROTOCOL.md, answered in acks as `{ ok: false, error: { code, message } }`. */
export type ErrorCode =
  'bad_request' | 'forbidden' | 'not_found' | 'rate_limited' | 'too_large' | 'limit_exceeded' | 'unavailable' | 'internal';

/** What a refused connection carries as `err.message` on the client's `connect_error`. */
export type RefusalCode = 'unauthorized' | 'forbidden' | 'rate_limited' | 'overloaded';

/** Any code the wire carries. */
export type WireCode = ErrorCode | RefusalCode;

export const ERROR_CODES: readonly ErrorCode[] = [
  'bad_request',
  'forbidden',
  'not_found',
  'rate_limited',
  'too_large',
  'limit_exceeded',
  'unavailable',
  'internal',
];

/** An error that maps onto a PROTOCOL.md code; anything else is answered `internal`. */
export class GatewayError extends Error {
  override name = 'GatewayError';
  constructor(
    public readonly code: WireCode,
    message: string,
  ) {
    super(message);
  }
}

/** Raised when Redis (or another dependency) cannot serve a request right now. */
export class UnavailableError extends GatewayError {
  override name = 'UnavailableError';
  constructor(message = 'a dependency (Redis) is unavailable, retry later') {
    super('unavailable', message);
  }
}

/** A per-socket cap was reached (PROTOCOL.md, Acknowledgements); `limit` names it in metrics. */
export class LimitError extends GatewayError {
  override name = 'LimitError';
  constructor(
    public readonly limit: string,
    message: string,
  ) {
    super('limit_exceeded', message);
  }
}

/** A refused handshake: `code` becomes `err.message` on the client's `connect_error`. */
export class AuthError extends GatewayError {
  override name = 'AuthError';
  constructor(
    public override readonly code: RefusalCode,
    message: string,
    /** Low-cardinality reason for metrics. */
    public readonly reason: string = code,
  ) {
    super(code, message);
  }
}

/** What ioredis (or the server) says when Redis is unreachable, restarting or failing over mid-command. */
const REDIS_DOWN =
  /Connection is closed|Stream isn't writeable|max retries per request|Command timed out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|^LOADING|^READONLY|^MASTERDOWN|^CLUSTERDOWN|^TRYAGAIN|startup nodes/i;

/** True for an error that means "Redis is down right now" rather than a bug: answered `unavailable`. */
export function isRedisDown(err: unknown): boolean {
  return err instanceof Error && !(err instanceof GatewayError) && REDIS_DOWN.test(err.message);
}

/** The code and message the wire carries for any error (unknown errors say nothing of their cause). */
export function toWire(err: unknown): { code: WireCode; message: string } {
  if (err instanceof GatewayError) return { code: err.code, message: err.message };
  // A command in flight when Redis went away fails with a client error, not UnavailableError.
  if (isRedisDown(err)) return { code: 'unavailable', message: new UnavailableError().message };
  return { code: 'internal', message: 'internal error' };
}

/** The ack body for an error. */
export function errorBody(err: unknown): { ok: false; error: { code: WireCode; message: string } } {
  return { ok: false, error: toWire(err) };
}

/** HTTP status for a wire code (publish API and the other HTTP edges). */
export function httpStatus(code: WireCode): number {
  switch (code) {
    case 'bad_request':
      return 400;
    case 'unauthorized':
      return 401;
    case 'forbidden':
      return 403;
    case 'not_found':
      return 404;
    case 'too_large':
      return 413;
    case 'rate_limited':
    case 'limit_exceeded':
      return 429;
    case 'unavailable':
    case 'overloaded':
      return 503;
    default:
      return 500;
  }
}

/** The `connect_error` a refused handshake gets: `err.message` the code, `err.data = { code, message }`. */
export function refusal(err: unknown): Error & { data: { code: RefusalCode; message: string } } {
  const r = err instanceof AuthError ? err : new AuthError('unauthorized', 'authentication failed', 'error');
  const e = new Error(r.code) as Error & { data: { code: RefusalCode; message: string } };
  e.data = { code: r.code, message: r.message };
  return e;
}
