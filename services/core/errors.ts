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

/** The ack body for an error. */
export function errorBody(err: unknown): { ok: false; error: { code: ErrorCode; message: string } } {
  if (err instanceof GatewayError) return { ok: false, error: { code: err.code, message: err.message } };
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
