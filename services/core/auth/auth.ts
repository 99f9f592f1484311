import { createPublicKey, createSecretKey, KeyObject } from 'crypto';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, JWTVerifyGetKey } from 'jose';
import type { Config } from '../platform/config';
import { AuthError } from '../platform/errors';
import { anyGlob, MAX_GLOB_LENGTH } from './glob';
import { isValidUserId, USER_ID_RULE } from '../redis/keys';

/** Who a connection belongs to, from a verified token (or the insecure dev mode). */
export interface Principal {
  userId: string;
  roles: string[];
  /** Glob patterns of rooms the user may join; undefined = any non-reserved room. */
  rooms?: string[];
  /** Glob patterns of user ids whose presence the user may read; undefined = anyone's. */
  presence?: string[];
  workspaces: string[];
  /** Token expiry (ms since epoch), when the token has one. */
  exp?: number;
}

export type Authenticator = (auth: unknown) => Promise<Principal>;

function stringArray(v: unknown, claim: string, max = 1000): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > max || v.some((x) => typeof x !== 'string' || x.length > MAX_GLOB_LENGTH)) {
    throw new AuthError('unauthorized', `claim "${claim}" must be an array of strings`, 'bad_claims');
  }
  return v as string[];
}

function principalFrom(claims: Record<string, unknown>): Principal {
  const sub = claims.sub;
  if (!isValidUserId(sub)) throw new AuthError('unauthorized', `token has no valid "sub" claim (${USER_ID_RULE})`, 'bad_claims');
  return {
    userId: sub,
    roles: stringArray(claims.roles, 'roles') ?? [],
    rooms: stringArray(claims.rooms, 'rooms'),
    presence: stringArray(claims.presence, 'presence'),
    workspaces: stringArray(claims.workspaces, 'workspaces') ?? [],
    exp: typeof claims.exp === 'number' ? claims.exp * 1000 : undefined,
  };
}

/** Builds the handshake authenticator for the configured mode (jwt or insecure). */
export function createAuthenticator(
  cfg: Pick<Config, 'authMode' | 'jwtSecret' | 'jwtPublicKey' | 'jwtJwksUrl' | 'jwtIssuer' | 'jwtAudience' | 'jwtRequireExp'>,
): Authenticator {
  if (cfg.authMode === 'insecure') {
    return async (auth) => {
      const a = (auth ?? {}) as Record<string, unknown>;
      if (!isValidUserId(a.userId))
        throw new AuthError('unauthorized', `insecure mode: auth.userId (${USER_ID_RULE}) is required`, 'missing_credentials');
      return principalFrom({ sub: a.userId, roles: a.roles, rooms: a.rooms, workspaces: a.workspaces, presence: a.presence });
    };
  }
  let key: Uint8Array | KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  if (cfg.jwtSecret) {
    // A KeyObject, made once: jose would import a raw secret again on every verification (~30 % of its cost).
    key = createSecretKey(Buffer.from(cfg.jwtSecret));
    algorithms = ['HS256'];
  } else if (cfg.jwtPublicKey) {
    const pem = cfg.jwtPublicKey.includes('\\n') ? cfg.jwtPublicKey.replace(/\\n/g, '\n') : cfg.jwtPublicKey;
    const k = createPublicKey(pem);
    key = k;
    algorithms = k.asymmetricKeyType === 'ec' ? ['ES256'] : ['RS256'];
  } else if (cfg.jwtJwksUrl) {
    key = createRemoteJWKSet(new URL(cfg.jwtJwksUrl), { timeoutDuration: 5000, cooldownDuration: 30000 });
    algorithms = ['RS256', 'ES256'];
  } else {
    throw new Error('AUTH_MODE=jwt needs JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL');
  }
  return async (auth) => {
    const token = (auth as Record<string, unknown> | undefined)?.token;
    if (typeof token !== 'string' || token.length === 0)
      throw new AuthError('unauthorized', 'auth.token (a JWT) is required', 'missing_credentials');
    if (token.length > 8192) throw new AuthError('unauthorized', 'token too long', 'invalid_token');
    try {
      const { payload } = await jwtVerify(token, key as never, {
        algorithms,
        issuer: cfg.jwtIssuer,
        audience: cfg.jwtAudience,
        requiredClaims: cfg.jwtRequireExp ? ['exp', 'sub'] : ['sub'],
        clockTolerance: 5,
      });
      return principalFrom(payload as Record<string, unknown>);
    } catch (e) {
      if (e instanceof AuthError) throw e;
      if (e instanceof joseErrors.JWTExpired) throw new AuthError('unauthorized', 'token expired', 'expired');
      if (e instanceof joseErrors.JWKSTimeout || (e as Error).name === 'JWKSInvalid')
        throw new AuthError('unauthorized', 'could not fetch signing keys', 'jwks_unavailable');
      if (e instanceof joseErrors.JWTClaimValidationFailed)
        throw new AuthError('unauthorized', `token claim check failed: ${e.claim}`, 'bad_claims');
      throw new AuthError('unauthorized', 'invalid token', 'invalid_token');
    }
  };
}

/** Whether the principal's `rooms` claim lets it join `room` (reserved rooms are checked elsewhere). */
export function mayJoinRoom(p: Principal, room: string): boolean {
  return anyGlob(p.rooms, room);
}

/** Whether the principal's `presence` claim lets it read or subscribe to the presence of `userId`. */
export function mayReadPresence(p: Principal, userId: string): boolean {
  return anyGlob(p.presence, userId);
}
