/** Error codes of PROTOCOL.md, answered in acks as `{ ok: false, error: { code, message } }`. */
export type ErrorCode = 'bad_request' | 'forbidden' | 'not_found' | 'rate_limited' | 'too_large' | 'unavailable' | 'internal';

export const ERROR_CODES: readonly ErrorCode[] = ['bad_request', 'forbidden', 'not_found', 'rate_limited', 'too_large', 'unavailable', 'internal'];

/** An error that maps onto a PROTOCOL.md code; anything else is answered `internal`. */
export class GatewayError extends Error {
  override name = 'GatewayError';
  constructor(public readonly code: ErrorCode, message: string) {
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

/** What ioredis (or the server) says when Redis is unreachable, restarting or failing over mid-command. */
const REDIS_DOWN = /Connection is closed|Stream isn't writeable|max retries per request|Command timed out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|^LOADING|^READONLY|^MASTERDOWN|^CLUSTERDOWN|^TRYAGAIN|startup nodes/i;

/** True for an error that means "Redis is down right now" rather than a bug: answered `unavailable`. */
export function isRedisDown(err: unknown): boolean {
  return err instanceof Error && !(err instanceof GatewayError) && REDIS_DOWN.test(err.message);
}

/** The ack body for an error. */
export function errorBody(err: unknown): { ok: false; error: { code: ErrorCode; message: string } } {
  if (err instanceof GatewayError) return { ok: false, error: { code: err.code, message: err.message } };
  // A command in flight when Redis went away fails with a client error, not UnavailableError.
  if (isRedisDown(err)) return { ok: false, error: { code: 'unavailable', message: new UnavailableError().message } };
  return { ok: false, error: { code: 'internal', message: 'internal error' } };
}

/** HTTP status for a code (publish API). */
export function httpStatus(code: ErrorCode): number {
  switch (code) {
    case 'bad_request': return 400;
    case 'forbidden': return 403;
    case 'not_found': return 404;
    case 'rate_limited': return 429;
    case 'too_large': return 413;
    case 'unavailable': return 503;
    default: return 500;
  }
}
