import path from 'path';

/**
 * The gateway patches a few private methods of Socket.IO (the version is pinned with `~` in
 * package.json for that reason). Each patch names what it needs here, so that a Socket.IO upgrade
 * that moved one fails loudly at start-up instead of silently losing the behaviour.
 */
export function requireMethods<T extends object>(target: T, owner: string, names: string[]): T {
  const missing = names.filter((n) => typeof (target as Record<string, unknown>)[n] !== 'function');
  if (missing.length) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const version = (require('socket.io/package.json') as { version: string }).version;
    throw new Error(
      `socket.io ${version}: ${owner} lacks ${missing.join(', ')}, which the gateway patches; use the socket.io version package.json pins`,
    );
  }
  return target;
}

/** Socket.IO's Client class (not exported by the package; it sits beside its entry point), checked for `names`. */
export function socketIoClientPrototype<T extends object>(names: string[]): T {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Client } = require(path.join(path.dirname(require.resolve('socket.io')), 'client.js')) as { Client: { prototype: T } };
  return requireMethods(Client.prototype, 'Client.prototype', names);
}
