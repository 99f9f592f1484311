import type http from 'http';
import type { Duplex } from 'stream';
import { FORWARDED_HEADER } from './forwarding';

// Where a new session starts while the pods rebalance (services/gateway/rebalance.ts).
//
// Without affinity: a balancer sends a moved client anywhere, round-robin a third of the time
// straight back to a full pod of three. A full pod therefore serves a new session's polling
// handshake on a pod below the fair share (forwarded once, forwarding.ts); the session lives there
// from its first packet on, and its later requests reach it as any session's do.
//
// With cookie affinity (REBALANCE_AFFINITY_COOKIE): a moved client reconnects with the balancer's
// cookie, which sends it straight back. So the pod answers such a handshake `503` with the cookie
// expired (both usual paths), once per connection it moved: the client's reconnection
// (socket.io-client retries a failed handshake by itself) then carries no cookie and the balancer
// picks a pod afresh.

/** True for a new Engine.IO session: a request under Socket.IO's `path` with `EIO` and no `sid`. */
export function isHandshake(url: string | undefined, path: string): boolean {
  if (!url || !url.startsWith(path)) return false;
  const q = url.indexOf('?');
  if (q < 0) return false;
  const params = new URLSearchParams(url.slice(q + 1));
  return params.has('EIO') && !params.getAll('sid').some(Boolean);
}

/** True when the Cookie header(s) hold a cookie named `name` with a non-empty value. */
export function hasCookie(header: string | string[] | undefined, name: string): boolean {
  const all = Array.isArray(header) ? header.join('; ') : (header ?? '');
  for (const part of all.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name && part.slice(eq + 1).trim() !== '') return true;
  }
  return false;
}

/** Set-Cookie values that expire `name` at `/` and at Socket.IO's path (where a balancer's cookie set on a handshake answer lands by default). */
export function expiringCookies(name: string, path: string): string[] {
  const own = path.replace(/\/+$/, '') || '/';
  return [...new Set(['/', own])].map((p) => `${name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=${p}`);
}

const BODY = JSON.stringify({ error: { code: 'unavailable', message: 'this pod is moving connections to others; reconnect' } });

export interface RebalanceRouting {
  /** Socket.IO's path (`/socket.io/`). */
  path: string;
  /** REBALANCE_AFFINITY_COOKIE: the balancer's affinity cookie, when it sets one. */
  affinityCookie?: string;
  /** Whether to turn away this handshake carrying the affinity cookie (rebalance.ts: once per connection moved, while shedding). */
  release(): boolean;
  /** The tag of the pod a new session should start on instead of this one (this pod is above its fair share), if any. */
  steer(): string | undefined;
  /** Serves the handshake on the pod tagged `tag` (forwarding.ts), or calls `local` when it cannot. */
  forward(tag: string, req: http.IncomingMessage, res: http.ServerResponse, local: () => void): void;
}

/**
 * Puts the rebalancing in front of the server's request and upgrade listeners (call it last).
 * Without an affinity cookie, a new session's polling handshake that reaches a pod above its fair
 * share is served by a pod below it (forwarded once, like any request for another pod's session:
 * the session then lives there). With one, a handshake carrying the cookie that `release()` lets go
 * is answered 503 with the cookie expired and never reaches engine.io. Everything else goes on as
 * before. Websocket-only handshakes are not steered (their tunnel would stay on this pod for life).
 */
export function installRebalanceRouting(server: http.Server, r: RebalanceRouting): void {
  const expire = r.affinityCookie ? expiringCookies(r.affinityCookie, r.path) : [];
  const released = (req: http.IncomingMessage) =>
    r.affinityCookie !== undefined && isHandshake(req.url, r.path) && hasCookie(req.headers.cookie, r.affinityCookie) && r.release();
  const steerable = (req: http.IncomingMessage) =>
    r.affinityCookie === undefined && req.method === 'GET' && isHandshake(req.url, r.path) && req.headers[FORWARDED_HEADER] === undefined;
  const onRequest = server.listeners('request') as http.RequestListener[];
  server.removeAllListeners('request');
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const local = () => {
      for (const l of onRequest) l.call(server, req, res);
    };
    if (released(req)) {
      // A body, so that clients reading cookies as the body arrives (engine.io-client's XHR) see the header.
      res.writeHead(503, { 'content-type': 'application/json', 'cache-control': 'no-store', 'set-cookie': expire, 'retry-after': '0' });
      return void res.end(BODY);
    }
    const tag = steerable(req) ? r.steer() : undefined;
    if (tag) r.forward(tag, req, res, local);
    else local();
  });
  type UpgradeListener = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  const onUpgrade = server.listeners('upgrade') as UpgradeListener[];
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!released(req)) {
      for (const l of onUpgrade) l.call(server, req, socket, head);
      return;
    }
    const head503 = [
      'HTTP/1.1 503 Service Unavailable',
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(BODY)}`,
      ...expire.map((c) => `Set-Cookie: ${c}`),
      'Connection: close',
    ];
    socket.on('error', () => undefined);
    socket.end(`${head503.join('\r\n')}\r\n\r\n${BODY}`);
  });
}
