import http from 'http';
import type { AddressInfo, Socket } from 'net';
import type { Duplex } from 'stream';
import type { Config } from './config';
import { GatewayError } from './errors';
import type { Metrics } from './metrics';

/** A route: answers and returns true, or returns false to let the next one try. */
export type Route = (req: http.IncomingMessage, res: http.ServerResponse) => boolean | Promise<boolean>;

/** Writes a JSON answer. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** `/healthz` (process up) and `/readyz` (Redis reachable and not draining), for both services. */
export function healthRoute(state: { ready(): boolean; draining(): boolean; redis(): boolean }, metrics: Metrics): Route {
  return (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz') {
      sendJson(res, 200, { ok: true });
      return true;
    }
    if (url === '/readyz') {
      const ok = state.ready();
      metrics.ready.set(ok ? 1 : 0);
      sendJson(res, ok ? 200 : 503, { ok, draining: state.draining(), redis: state.redis() });
      return true;
    }
    return false;
  };
}

/** `/metrics` in the Prometheus text format. */
export function metricsRoute(metrics: Metrics, ready: () => boolean): Route {
  return async (req, res) => {
    if ((req.url ?? '').split('?')[0] !== '/metrics') return false;
    try {
      metrics.ready.set(ready() ? 1 : 0);
      const body = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
    } catch (e) {
      res.writeHead(500).end(String((e as Error).message));
    }
    return true;
  };
}

/** A request handler trying `routes` in order; 404 when none answers, 500 when one throws. */
export function router(routes: Route[], onError: (e: Error) => void): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    void (async () => {
      try {
        for (const r of routes) if (await r(req, res)) return;
        sendJson(res, 404, { error: { code: 'not_found', message: 'no such route' } });
      } catch (e) {
        onError(e as Error);
        if (!res.headersSent) res.writeHead(500).end();
      }
    })();
  };
}

/** Listens on `port` (0 = ephemeral) and resolves with the port taken. */
export function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** The request ended before its body did: the client went away (`timedOut`: the server cut it, HTTP_REQUEST_TIMEOUT_MS). */
export class RequestAborted extends Error {
  override name = 'RequestAborted';
  constructor(public readonly timedOut: boolean) {
    super(timedOut ? 'request cut: its body was not received in time' : 'request aborted by the client');
  }
}

/** Sockets this process cut for a stalled request (clientError with a timeout), so readers can tell a cut from an abort. */
const cutSockets = new WeakSet<object>();

/**
 * Reads a request body up to `limit` bytes; rejects with too_large beyond it, and with
 * RequestAborted when the connection ends first (the client aborted, or the request timeout cut it).
 */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      return reject(new GatewayError('too_large', `body exceeds ${limit} bytes`));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const aborted = () => reject(new RequestAborted(cutSockets.has(req.socket)));
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new GatewayError('too_large', `body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    // An aborted body: 'error' (ECONNRESET "aborted") and/or 'close' before 'end'; the first settles.
    req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || req.destroyed ? aborted() : reject(e)));
    req.on('close', () => {
      if (!req.complete) aborted();
    });
  });
}

/**
 * Answers before the request body was read (an early 401 or 413) close the connection once the
 * answer is flushed (`Connection: close`: node:http then ends and destroys the socket), so a
 * body that trickles in cannot hold it open.
 */
export function closeAfterAnswer(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.complete || res.headersSent) return;
  res.setHeader('connection', 'close');
  res.once('finish', () => req.socket.destroySoon());
}

type EdgeSettings = Pick<Config, 'httpHeadersTimeoutMs' | 'httpRequestTimeoutMs' | 'httpMaxConnections'>;

/** What node:http writes before closing a connection whose request it refuses (its own defaults, kept). */
const REFUSALS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n',
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n',
};
const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';

/**
 * An HTTP server with the edge bounds of OPERATIONS.md ("HTTP edges"), for every port of both services:
 * - `headersTimeout` (HTTP_HEADERS_TIMEOUT_MS): a connection must deliver a request's headers within
 *   it (also a new connection that sends nothing); `requestTimeout` (HTTP_REQUEST_TIMEOUT_MS): the
 *   whole request, body included. Node measures both while the request is being *received* only
 *   (the docs: "the timeout value in milliseconds for receiving the entire request from the
 *   client"): a long-polling GET is complete once its headers are in, and waiting for its answer
 *   does not count; an upgraded websocket leaves the HTTP parser and is not checked at all. Node
 *   checks every `connectionsCheckingInterval` (30 s by default, here at most 1 s) and answers 408.
 * - `maxConnections` (HTTP_MAX_CONNECTIONS, `opts.public` only): connections beyond it are closed
 *   at accept time; 0 means no cap.
 * - refusals are counted in `realtime_http_connections_closed_total{reason}`.
 */
export function createHttpServer(cfg: EdgeSettings, metrics: Metrics, opts: { public?: boolean; handler?: http.RequestListener } = {}) {
  const interval = Math.max(100, Math.min(1000, Math.floor(cfg.httpHeadersTimeoutMs / 4)));
  const server = http.createServer({
    headersTimeout: cfg.httpHeadersTimeoutMs,
    requestTimeout: cfg.httpRequestTimeoutMs,
    connectionsCheckingInterval: interval,
  });
  if (opts.handler) server.on('request', opts.handler);
  if (opts.public && cfg.httpMaxConnections > 0) {
    server.maxConnections = cfg.httpMaxConnections;
    server.on('drop', () => metrics.httpConnectionsClosed.inc({ reason: 'max_connections' }));
  }
  // Listening to clientError replaces node's default answer: the same answers, counted.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const code = err.code ?? '';
    if (code !== 'ECONNRESET' && code !== 'EPIPE') {
      const timeout = code === 'ERR_HTTP_REQUEST_TIMEOUT';
      if (timeout) cutSockets.add(socket);
      metrics.httpConnectionsClosed.inc({ reason: timeout ? 'timeout' : 'malformed' });
      const answering = (socket as Duplex & { _httpMessage?: http.ServerResponse | null })._httpMessage;
      if (socket.writable && !answering?.headersSent) socket.write(REFUSALS[code] ?? BAD_REQUEST);
    }
    socket.destroy();
  });
  return server;
}

/**
 * Serves every upgrade request that `owns` does not take (an `Upgrade: h2c` offer from the JDK
 * HttpClient or `curl --http2`, a websocket offer outside `/socket.io/`, any other protocol) as the
 * plain HTTP/1.1 request it also is, the offer ignored (RFC 9110 7.8: a server may ignore Upgrade).
 *
 * Node emits 'upgrade' instead of 'request' for any request with an Upgrade header as soon as the
 * server has an upgrade listener, and engine.io's listener closes those it does not own after 1 s
 * without an answer. Call this after Socket.IO attached: it takes the existing upgrade listeners
 * and calls them only for owned requests. Any other request is handed back to node's HTTP parser:
 * its head is written back (without `Upgrade`, `HTTP2-Settings` and their `Connection` tokens) in
 * front of what followed it, and node's own connection listener parses the socket anew, so the
 * request gets the normal 'request' event with its body, keep-alive and the timeouts above.
 */
export function serveUpgradesAsHttp(server: http.Server, owns: (req: http.IncomingMessage) => boolean): void {
  const owners = server.listeners('upgrade') as Array<(req: http.IncomingMessage, socket: Duplex, head: Buffer) => void>;
  const parse = server.listeners('connection').find((l) => l.name === 'connectionListener') as ((s: Socket) => void) | undefined;
  if (!parse) throw new Error('node:http internals changed: no connectionListener on the server (serveUpgradesAsHttp)');
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    if (owners.length && owns(req)) {
      for (const l of owners) l.call(server, req, socket, head);
      return;
    }
    socket.unshift(Buffer.concat([requestHead(req), head]));
    parse.call(server, socket);
  });
}

const HOP_TOKENS = new Set(['upgrade', 'http2-settings']);

/** The request line and headers of `req` as they came, without the upgrade offer. */
function requestHead(req: http.IncomingMessage): Buffer {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    let value = req.rawHeaders[i + 1];
    const lower = name.toLowerCase();
    if (HOP_TOKENS.has(lower)) continue;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t && !HOP_TOKENS.has(t.toLowerCase()))
        .join(', ');
      if (!value) continue;
    }
    lines.push(`${name}: ${value}`);
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** True for what Socket.IO serves as an upgrade: a websocket upgrade under its path. */
export function socketIoUpgrade(path: string): (req: http.IncomingMessage) => boolean {
  return (req) => (req.url ?? '').startsWith(path) && (req.headers.upgrade ?? '').toLowerCase() === 'websocket';
}
