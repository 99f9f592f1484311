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
  // One verification per CONNECT: the workspace matcher, the recovery and the middleware share it.
  const verified = new WeakMap<object, Promise<Principal>>();
  const verify = (auth: unknown): Promise<Principal> => {
    if (!auth || typeof auth !== 'object') return authenticate(auth);
    let p = verified.get(auth);
    if (!p) verified.set(auth, (p = authenticate(auth)));
    return p;
  };
  const refusals = new WeakMap<object, AuthError>();
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
      const principal = await verify(auth);
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
  const middleware = (check?: NamespaceCheck) => (socket: Socket, next: Next) =>
    void inSpan('socket.io handshake', { kind: SpanKind.SERVER, attributes: { 'socket.io.namespace': socket.nsp.name } }, async (span) =>
      run(socket, check, (err) => {
        if (err) span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
        next(err);
      }),
    );

  /**
   * Workspace namespaces are created only for a CONNECT whose token is valid and grants the
   * workspace: nothing (no namespace, adapter or subscription) is allocated for anyone else, and
   * the refusal says why (unknown-namespace.ts answers it).
   */
  const matchWorkspace = (name: string, auth: Record<string, unknown>, next: (err: Error | null, ok: boolean) => void): void => {
    const id = cfg.workspacePattern.exec(name)?.[1];
    if (id === undefined) return next(null, false);
    verify(auth).then(
      (p) => {
        if (p.workspaces.includes(id)) return next(null, true);
        if (auth && typeof auth === 'object')
          refusals.set(auth, new AuthError('forbidden', `your token does not grant workspace "${id}"`, 'workspace'));
        next(null, false);
      },
      (e: unknown) => {
        if (auth && typeof auth === 'object')
          refusals.set(auth, e instanceof AuthError ? e : new AuthError('unauthorized', 'authentication failed', 'error'));
        next(null, false);
      },
    );
  };
  const refusalOf = (auth: unknown) => (auth && typeof auth === 'object' ? refusals.get(auth) : undefined);

  return { middleware, verify, matchWorkspace, refusalOf };
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
