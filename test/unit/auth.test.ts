import { generateKeyPairSync, KeyObject } from 'crypto';
import http from 'http';
import { AddressInfo } from 'net';
import { exportJWK, JWK, SignJWT, UnsecuredJWT } from 'jose';
import { createAuthenticator, mayJoinRoom, Principal } from '../../services/core/auth/auth';
import { compileGlob as globToRegExp } from '../../services/core/auth/glob';
import { AuthError } from '../../services/core/platform/errors';
import type { Config } from '../../services/core/platform/config';

type AuthCfg = Pick<Config, 'authMode' | 'jwtSecret' | 'jwtPublicKey' | 'jwtJwksUrl' | 'jwtIssuer' | 'jwtAudience' | 'jwtRequireExp'>;

const SECRET = 'unit-test-secret-that-is-at-least-32-bytes';
const base: AuthCfg = {
  authMode: 'jwt',
  jwtSecret: undefined,
  jwtPublicKey: undefined,
  jwtJwksUrl: undefined,
  jwtIssuer: undefined,
  jwtAudience: undefined,
  jwtRequireExp: true,
};
const hsCfg = (over: Partial<AuthCfg> = {}): AuthCfg => ({ ...base, jwtSecret: SECRET, ...over });
const now = () => Math.floor(Date.now() / 1000);

interface SignOpts {
  alg?: string;
  key?: Uint8Array | KeyObject;
  kid?: string;
  sub?: string | null;
  exp?: number | null;
  iss?: string;
  aud?: string;
}

/** Signs a token; `sub: null` / `exp: null` leave the claim out. */
async function sign(claims: Record<string, unknown> = {}, o: SignOpts = {}): Promise<string> {
  const alg = o.alg ?? 'HS256';
  let jwt = new SignJWT(claims).setProtectedHeader(o.kid ? { alg, kid: o.kid } : { alg }).setIssuedAt();
  if (o.sub !== null) jwt = jwt.setSubject(o.sub ?? 'alice');
  if (o.exp !== null) jwt = jwt.setExpirationTime(o.exp ?? now() + 3600);
  if (o.iss) jwt = jwt.setIssuer(o.iss);
  if (o.aud) jwt = jwt.setAudience(o.aud);
  return jwt.sign(o.key ?? new TextEncoder().encode(SECRET));
}

/** The AuthError an authentication attempt is refused with (fails when it is accepted). */
async function refusal(p: Promise<Principal>): Promise<AuthError> {
  try {
    const principal = await p;
    throw new Error(`expected a refusal, got ${JSON.stringify(principal)}`);
  } catch (e) {
    expect(e).toBeInstanceOf(AuthError);
    return e as AuthError;
  }
}

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();

describe('HS256', () => {
  const auth = createAuthenticator(hsCfg());

  test('a valid token gives the principal with its claims', async () => {
    const exp = now() + 600;
    const p = await auth({ token: await sign({ roles: ['admin'], rooms: ['team-*'], workspaces: ['acme'] }, { exp }) });
    expect(p).toEqual({ userId: 'alice', roles: ['admin'], rooms: ['team-*'], workspaces: ['acme'], exp: exp * 1000 });
  });

  test('optional claims default: no roles, any room, no workspaces', async () => {
    const p = await auth({ token: await sign({}, { sub: 'bob@example.com' }) });
    expect(p.userId).toBe('bob@example.com');
    expect(p.roles).toEqual([]);
    expect(p.rooms).toBeUndefined();
    expect(p.workspaces).toEqual([]);
  });

  test('no token, an empty token, a non-string token, garbage and an overlong token are unauthorized', async () => {
    for (const a of [undefined, null, {}, { token: '' }, { token: 42 }, { userId: 'alice' }]) {
      const e = await refusal(auth(a));
      expect(e.code).toBe('unauthorized');
      expect(e.reason).toBe('missing_credentials');
      expect(e.message).toBe('auth.token (a JWT) is required');
    }
    for (const token of ['garbage', 'a.b.c', 'x'.repeat(9000)]) {
      const e = await refusal(auth({ token }));
      expect(e.code).toBe('unauthorized');
      expect(e.reason).toBe('invalid_token');
    }
  });

  test('an expired token is unauthorized with reason expired (beyond the 5 s clock tolerance)', async () => {
    const e = await refusal(auth({ token: await sign({}, { exp: now() - 60 }) }));
    expect(e).toMatchObject({ code: 'unauthorized', reason: 'expired', message: 'token expired' });
    // within the tolerance it is still accepted
    expect((await auth({ token: await sign({}, { exp: now() - 1 }) })).userId).toBe('alice');
  });

  test('a token without exp is refused when JWT_REQUIRE_EXP=true, accepted when false', async () => {
    const t = await sign({}, { exp: null });
    const e = await refusal(auth({ token: t }));
    expect(e).toMatchObject({ code: 'unauthorized', reason: 'bad_claims' });
    expect(e.message).toContain('exp');
    const lax = createAuthenticator(hsCfg({ jwtRequireExp: false }));
    const p = await lax({ token: t });
    expect(p.userId).toBe('alice');
    expect(p.exp).toBeUndefined();
    // an expired token stays refused even when exp is optional
    expect((await refusal(lax({ token: await sign({}, { exp: now() - 60 }) }))).reason).toBe('expired');
  });

  test('a bad signature (other secret, tampered payload) is unauthorized', async () => {
    const other = await sign({}, { key: new TextEncoder().encode('another-secret-that-is-32-bytes-long!!') });
    expect(await refusal(auth({ token: other }))).toMatchObject({
      code: 'unauthorized',
      reason: 'invalid_token',
      message: 'invalid token',
    });
    const [h, , s] = (await sign()).split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'mallory', exp: now() + 3600, roles: ['admin'] })).toString('base64url');
    expect((await refusal(auth({ token: `${h}.${forged}.${s}` }))).reason).toBe('invalid_token');
  });

  test('alg none and other algorithms are refused', async () => {
    const none = new UnsecuredJWT({ sub: 'alice', roles: ['admin'] }).setExpirationTime('1h').encode();
    expect(await refusal(auth({ token: none }))).toMatchObject({ code: 'unauthorized', reason: 'invalid_token' });
    const hs512 = await sign({}, { alg: 'HS512', key: new TextEncoder().encode(SECRET + SECRET) });
    expect((await refusal(createAuthenticator(hsCfg({ jwtSecret: SECRET + SECRET }))({ token: hs512 }))).reason).toBe('invalid_token');
  });

  test('a missing or invalid sub is unauthorized (bad_claims)', async () => {
    const e = await refusal(auth({ token: await sign({}, { sub: null }) }));
    expect(e).toMatchObject({ code: 'unauthorized', reason: 'bad_claims' });
    expect(e.message).toContain('sub');
    for (const sub of ['', 'has space', 'x'.repeat(256), 'brace{d}', 'Jos\u00e9']) {
      const err = await refusal(auth({ token: await sign({}, { sub }) }));
      expect(err.reason).toBe('bad_claims');
    }
    // identity providers' subjects are user ids as they are
    for (const sub of ['auth0|5f1e2d3c', 'google-oauth2|109876', 'x'.repeat(255)])
      expect((await auth({ token: await sign({}, { sub }) })).userId).toBe(sub);
    // sub of the wrong type
    const numeric = await new SignJWT({ sub: 42 } as never)
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(SECRET));
    expect((await refusal(auth({ token: numeric }))).code).toBe('unauthorized');
  });

  test('claims of the wrong type are unauthorized and name the claim', async () => {
    const bad: Array<[string, unknown]> = [
      ['roles', 'admin'],
      ['roles', [1, 2]],
      ['rooms', 'lobby'],
      ['rooms', [null]],
      ['workspaces', { a: 1 }],
      ['workspaces', ['x'.repeat(300)]],
      ['roles', Array.from({ length: 1001 }, () => 'r')],
    ];
    for (const [claim, value] of bad) {
      const e = await refusal(auth({ token: await sign({ [claim]: value }) }));
      expect(e).toMatchObject({ code: 'unauthorized', reason: 'bad_claims', message: `claim "${claim}" must be an array of strings` });
    }
  });

  test('issuer and audience are checked when configured', async () => {
    const strict = createAuthenticator(hsCfg({ jwtIssuer: 'https://idp.example', jwtAudience: 'realtime' }));
    expect((await strict({ token: await sign({}, { iss: 'https://idp.example', aud: 'realtime' }) })).userId).toBe('alice');
    const wrongIss = await refusal(strict({ token: await sign({}, { iss: 'https://evil.example', aud: 'realtime' }) }));
    expect(wrongIss).toMatchObject({ code: 'unauthorized', reason: 'bad_claims', message: 'token claim check failed: iss' });
    const noIss = await refusal(strict({ token: await sign({}, { aud: 'realtime' }) }));
    expect(noIss.message).toBe('token claim check failed: iss');
    const wrongAud = await refusal(strict({ token: await sign({}, { iss: 'https://idp.example', aud: 'billing' }) }));
    expect(wrongAud).toMatchObject({ code: 'unauthorized', reason: 'bad_claims', message: 'token claim check failed: aud' });
    // without configuration, any iss/aud is fine
    expect((await auth({ token: await sign({}, { iss: 'anyone', aud: 'anything' }) })).userId).toBe('alice');
  });
});

describe('RS256 and ES256 with JWT_PUBLIC_KEY', () => {
  const rs = rsa();
  const es = ec();

  test('RS256: a token signed by the private key is accepted; another key, HS256 and ES256 are refused', async () => {
    const auth = createAuthenticator({ ...base, jwtPublicKey: spki(rs.publicKey) });
    expect((await auth({ token: await sign({ roles: ['admin'] }, { alg: 'RS256', key: rs.privateKey }) })).roles).toEqual(['admin']);
    expect((await refusal(auth({ token: await sign({}, { alg: 'RS256', key: rsa().privateKey }) }))).reason).toBe('invalid_token');
    // the classic confusion attack: an HS256 token "signed" with the public key's PEM
    const confused = await sign({}, { alg: 'HS256', key: new TextEncoder().encode(spki(rs.publicKey)) });
    expect(await refusal(auth({ token: confused }))).toMatchObject({ code: 'unauthorized', reason: 'invalid_token' });
    expect((await refusal(auth({ token: await sign() }))).code).toBe('unauthorized');
    expect((await refusal(auth({ token: await sign({}, { alg: 'ES256', key: es.privateKey }) }))).code).toBe('unauthorized');
    expect((await refusal(auth({ token: new UnsecuredJWT({ sub: 'alice' }).setExpirationTime('1h').encode() }))).code).toBe('unauthorized');
  });

  test('ES256: accepted with the EC key; RS256 refused; expiry still checked', async () => {
    const auth = createAuthenticator({ ...base, jwtPublicKey: spki(es.publicKey) });
    expect((await auth({ token: await sign({}, { alg: 'ES256', key: es.privateKey, sub: 'eve' }) })).userId).toBe('eve');
    expect((await refusal(auth({ token: await sign({}, { alg: 'RS256', key: rs.privateKey }) }))).reason).toBe('invalid_token');
    expect((await refusal(auth({ token: await sign({}, { alg: 'ES256', key: es.privateKey, exp: now() - 60 }) }))).reason).toBe('expired');
  });

  test('a PEM with literal \\n escapes (as set in one-line env files) works', async () => {
    const oneLine = spki(es.publicKey).trim().replace(/\n/g, '\\n');
    expect(oneLine).not.toContain('\n');
    const auth = createAuthenticator({ ...base, jwtPublicKey: oneLine });
    expect((await auth({ token: await sign({}, { alg: 'ES256', key: es.privateKey }) })).userId).toBe('alice');
  });

  test('no key at all in jwt mode is a programming error at creation', () => {
    expect(() => createAuthenticator(base)).toThrow(/JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL/);
  });
});

describe('JWKS via JWT_JWKS_URL', () => {
  let server: http.Server;
  let url: string;
  let keys: JWK[] = [];
  let fetches = 0;
  let status = 200;
  const k1 = rsa();
  const k2 = ec();
  const k3 = rsa();
  const jwk = async (k: KeyObject, kid: string, alg: string): Promise<JWK> => ({ ...(await exportJWK(k)), kid, alg, use: 'sig' });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      fetches++;
      if (req.url !== '/.well-known/jwks.json' || status !== 200) return void res.writeHead(status === 200 ? 404 : status).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    await new Promise<void>((r) => server.close(() => r()));
  });
  beforeEach(() => {
    fetches = 0;
    status = 200;
    jest.restoreAllMocks();
  });

  test('RS256 and ES256 tokens are verified against the set, fetched once and cached', async () => {
    keys = [await jwk(k1.publicKey, 'k1', 'RS256'), await jwk(k2.publicKey, 'k2', 'ES256')];
    const auth = createAuthenticator({ ...base, jwtJwksUrl: url });
    expect((await auth({ token: await sign({}, { alg: 'RS256', key: k1.privateKey, kid: 'k1', sub: 'rs' }) })).userId).toBe('rs');
    expect((await auth({ token: await sign({}, { alg: 'ES256', key: k2.privateKey, kid: 'k2', sub: 'es' }) })).userId).toBe('es');
    expect((await auth({ token: await sign({}, { alg: 'RS256', key: k1.privateKey, kid: 'k1', sub: 'again' }) })).userId).toBe('again');
    expect(fetches).toBe(1);
    // a token whose kid is in the set but signed by another key is refused
    expect((await refusal(auth({ token: await sign({}, { alg: 'RS256', key: k3.privateKey, kid: 'k1' }) }))).reason).toBe('invalid_token');
    // HS256 is not accepted in JWKS mode
    expect((await refusal(auth({ token: await sign() }))).code).toBe('unauthorized');
  });

  test('key rotation: an unknown kid refetches the set (once the 30 s cooldown after the last fetch has passed)', async () => {
    keys = [await jwk(k1.publicKey, 'old', 'RS256')];
    const auth = createAuthenticator({ ...base, jwtJwksUrl: url });
    expect((await auth({ token: await sign({}, { alg: 'RS256', key: k1.privateKey, kid: 'old' }) })).userId).toBe('alice');
    expect(fetches).toBe(1);
    // The identity provider rotates: a new key is published.
    keys = [await jwk(k1.publicKey, 'old', 'RS256'), await jwk(k3.publicKey, 'new', 'RS256')];
    const fresh = await sign({}, { alg: 'RS256', key: k3.privateKey, kid: 'new', sub: 'rotated' });
    // Right after a fetch, unknown kids do not hammer the identity provider.
    expect((await refusal(auth({ token: fresh }))).code).toBe('unauthorized');
    expect(fetches).toBe(1);
    // After the cooldown, the unknown kid triggers one refetch and the token is accepted.
    const realNow = Date.now.bind(Date);
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() + 31000);
    expect((await auth({ token: fresh })).userId).toBe('rotated');
    expect(fetches).toBe(2);
    // ...and the cached new key serves later tokens without another fetch
    expect((await auth({ token: await sign({}, { alg: 'RS256', key: k3.privateKey, kid: 'new' }) })).userId).toBe('alice');
    expect(fetches).toBe(2);
  });

  test('an unreachable or failing JWKS endpoint refuses with unauthorized (never crashes)', async () => {
    keys = [await jwk(k1.publicKey, 'k1', 'RS256')];
    const t = await sign({}, { alg: 'RS256', key: k1.privateKey, kid: 'k1' });
    status = 500;
    expect((await refusal(createAuthenticator({ ...base, jwtJwksUrl: url })({ token: t }))).code).toBe('unauthorized');
    status = 200;
    const gone = url.replace(/:\d+\//, ':1/');
    expect((await refusal(createAuthenticator({ ...base, jwtJwksUrl: gone })({ token: t }))).code).toBe('unauthorized');
  });
});

describe('insecure mode', () => {
  const auth = createAuthenticator({ ...base, authMode: 'insecure' });

  test('auth.userId is accepted without a signature, with optional roles/rooms/workspaces', async () => {
    expect(await auth({ userId: 'dev-1' })).toEqual({ userId: 'dev-1', roles: [], rooms: undefined, workspaces: [], exp: undefined });
    expect(await auth({ userId: 'dev-2', roles: ['admin'], rooms: ['a*'], workspaces: ['w'] })).toMatchObject({
      roles: ['admin'],
      rooms: ['a*'],
      workspaces: ['w'],
    });
  });

  test('a missing or invalid userId is unauthorized', async () => {
    for (const a of [undefined, {}, { userId: '' }, { userId: 'has space' }, { userId: 7 }, { token: 'abc' }]) {
      const e = await refusal(auth(a));
      expect(e).toMatchObject({ code: 'unauthorized', reason: 'missing_credentials' });
      expect(e.message).toMatch(/auth\.userId/);
    }
    expect((await refusal(auth({ userId: 'ok', roles: 'admin' }))).reason).toBe('bad_claims');
  });
});

describe('compiled globs and mayJoinRoom', () => {
  test('* matches any run, ? one character, everything else literally, anchored', () => {
    expect(globToRegExp('team-*').test('team-a')).toBe(true);
    expect(globToRegExp('team-*').test('team-')).toBe(true);
    expect(globToRegExp('team-*').test('xteam-a')).toBe(false);
    expect(globToRegExp('room-?').test('room-1')).toBe(true);
    expect(globToRegExp('room-?').test('room-12')).toBe(false);
    expect(globToRegExp('a.b').test('a.b')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
    expect(globToRegExp('a+b').test('aab')).toBe(false);
    expect(globToRegExp('a+b').test('a+b')).toBe(true);
    expect(globToRegExp('lobby').test('lobby2')).toBe(false);
    expect(globToRegExp('*').test('anything:at-all')).toBe(true);
    expect(globToRegExp('team-*')).toBe(globToRegExp('team-*')); // cached
  });

  test('mayJoinRoom: absent claim allows any room, a list allows only matches, an empty list none', () => {
    const p = (rooms?: string[]): Principal => ({ userId: 'u', roles: [], workspaces: [], rooms });
    expect(mayJoinRoom(p(), 'anything')).toBe(true);
    expect(mayJoinRoom(p(['team-*', 'lobby']), 'team-x')).toBe(true);
    expect(mayJoinRoom(p(['team-*', 'lobby']), 'lobby')).toBe(true);
    expect(mayJoinRoom(p(['team-*', 'lobby']), 'lobby-2')).toBe(false);
    expect(mayJoinRoom(p([]), 'lobby')).toBe(false);
  });
});
