import type { Socket } from 'socket.io';
import { createAuthenticator, type Principal } from '../core/auth/auth';
import { AuthError, refusal } from '../core/platform/errors';
import { inSpan, SpanKind, SpanStatusCode } from '../core/platform/telemetry';
import type { GatewayContext } from './context';
import { KeyedLimiter } from './rate-limit';

/** A namespace's own condition on the principal (workspace claim, admin role); throws AuthError. */
export type NamespaceCheck = (p: Principal, socket: Socket) => void;

type Next = (err?: Error) => void;

/**
 * The handshake every namespace runs: the per-address connect limit, the pod's connection limit,
 * the token, then the namespace's own check. A refusal is a `connect_error` with the contract code
 * (PROTOCOL.md, Connecting), counted by reason.
 */
export function createHandshake(ctx: GatewayContext) {
  const { cfg, metrics, logger } = ctx;
  const authenticate = createAuthenticator(cfg);
  const connectLimiter = new KeyedLimiter(cfg.connectRatePerSecond, Math.max(1, cfg.connectRatePerSecond * 2));

  const refuse = (next: Next, e: unknown) => {
    metrics.authFailures.inc({ reason: e instanceof AuthError ? e.reason : 'error' });
    next(refusal(e));
  };

  const run = async (socket: Socket, check: NamespaceCheck | undefined, next: Next) => {
    try {
      const addr = clientAddress(socket, cfg.trustProxyHops);
      if (!connectLimiter.take(addr)) {
        metrics.rateLimited.inc({ scope: 'connect' });
        throw new AuthError('rate_limited', 'too many connection attempts, retry later');
      }
      if (cfg.maxConnections > 0 && ctx.connections() >= cfg.maxConnections)
        throw new AuthError('overloaded', 'this pod is at its connection limit, retry later');
      const auth = socket.handshake.auth as Record<string, unknown>;
      if (typeof auth?.pid === 'string' && typeof auth?.offset === 'string') metrics.recoveryAttempts.inc();
      const principal = await authenticate(auth);
      // The token is not needed any more: do not keep it in memory for the life of the socket.
      if (auth && typeof auth === 'object') delete auth.token;
      check?.(principal, socket);
      socket.data.principal = principal;
      next();
    } catch (e) {
      if (!(e instanceof AuthError)) logger.error({ err: (e as Error).message }, 'handshake failed');
      refuse(next, e);
    }
  };

  /** The middleware of a namespace, with its own check. */
  return (check?: NamespaceCheck) => (socket: Socket, next: Next) =>
    void inSpan('socket.io handshake', { kind: SpanKind.SERVER, attributes: { 'socket.io.namespace': socket.nsp.name } }, async (span) =>
      run(socket, check, (err) => {
        if (err) span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
        next(err);
      }),
    );
}

/** A workspace namespace needs its id in the token's `workspaces` claim. */
export function workspaceCheck(pattern: RegExp): NamespaceCheck {
  return (p, socket) => {
    const id = pattern.exec(socket.nsp.name)?.[1] ?? socket.nsp.name;
    if (!p.workspaces.includes(id)) throw new AuthError('forbidden', `your token does not grant workspace "${id}"`, 'workspace');
  };
}

/** `/admin` needs role `admin`. */
export const adminCheck: NamespaceCheck = (p) => {
  if (!p.roles.includes('admin')) throw new AuthError('forbidden', 'the admin namespace needs role "admin"', 'role');
};

/**
 * The client's address for the handshake limit: the TCP peer, or, behind `hops` trusted proxies
 * that append to X-Forwarded-For, the entry they appended (entries further left are the client's
 * own say and could be forged).
 */
export function clientAddress(socket: Pick<Socket, 'handshake'>, hops: number): string {
  if (hops <= 0) return socket.handshake.address;
  const xff = String(socket.handshake.headers['x-forwarded-for'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return xff[xff.length - hops] ?? xff[0] ?? socket.handshake.address;
}
