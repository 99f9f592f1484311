import http from 'http';
import { AddressInfo } from 'net';
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
/** Reads a request body up to `limit` bytes; rejects with too_large beyond it. */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      return reject(new GatewayError('too_large', `body exceeds ${limit} bytes`));
    }
    const chunks: Buffer[] = [];
    let size = 0;
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
    req.on('error', reject);
  });
}
