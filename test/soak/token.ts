import { SignJWT } from 'jose';

// What test/e2e/cluster.ts needs from test/helpers/cluster.ts (a JWT signer), without the rest of
// that file, which loads the services' code in the test process. The soak project of
// jest.config.js maps `../helpers/cluster` here: the soak runs the services from its own compiled
// snapshot (build.ts), so its test process must not depend on the working tree's services, which
// other people may be editing meanwhile.

/** Signs an HS256 token (the signature of test/helpers/cluster.ts `token`). */
export async function token(
  sub: string,
  claims: Record<string, unknown> = {},
  opts: { secret?: string; expiresIn?: string | number | null } = {},
): Promise<string> {
  if (!opts.secret) throw new Error('the soak signs tokens with the cluster secret only');
  let jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt();
  if (opts.expiresIn !== null) jwt = jwt.setExpirationTime(opts.expiresIn ?? '1h');
  return jwt.sign(new TextEncoder().encode(opts.secret));
}
