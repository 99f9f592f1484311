/**
 * A loopback HTTP load balancer standing in for HAProxy / an ingress: every request and every
 * websocket upgrade goes to the next backend in turn (round-robin per request, as HAProxy does
 * in http mode), or, with `sticky`, to the backend its affinity cookie names (inserted on the
 * answer to a request without one, like HAProxy's `cookie RTGSRV insert`). It strips the header
 * pods mark forwarded requests with (the public edge does), and counts what it routed.
 */
import http from 'http';
import net from 'net';
import type { AddressInfo } from 'net';
import type { Duplex } from 'stream';

export interface Balancer {
  url: string;
  port: number;
  /** Engine.IO requests (path /socket.io/) and upgrades routed, and all requests by backend index. */
  counts: { engineRequests: number; upgrades: number; byBackend: number[] };
  close(): Promise<void>;
}

const COOKIE = 'RTGSRV';
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'x-rtg-forwarded']);

function cookieBackend(h: http.IncomingHttpHeaders, n: number): number | undefined {
  const m = new RegExp(`(?:^|;\\s*)${COOKIE}=(\\d+)`).exec(h.cookie ?? '');
  const i = m ? Number(m[1]) : NaN;
  return Number.isInteger(i) && i >= 0 && i < n ? i : undefined;
}

/** Starts a balancer on 127.0.0.1 in front of `backends` (ports on 127.0.0.1). */
export async function startBalancer(backends: number[], opts: { sticky?: boolean } = {}): Promise<Balancer> {
  let next = 0;
  const counts = { engineRequests: 0, upgrades: 0, byBackend: backends.map(() => 0) };
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  const open = new Set<Duplex>();
  const pick = (h: http.IncomingHttpHeaders): { i: number; fresh: boolean } => {
    const c = opts.sticky ? cookieBackend(h, backends.length) : undefined;
    if (c !== undefined) return { i: c, fresh: false };
    const i = next++ % backends.length;
    return { i, fresh: Boolean(opts.sticky) };
  };
  const server = http.createServer((req, res) => {
    const { i, fresh } = pick(req.headers);
    counts.byBackend[i]++;
    if ((req.url ?? '').startsWith('/socket.io/')) counts.engineRequests++;
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    const up = http.request({ host: '127.0.0.1', port: backends[i], method: req.method, path: req.url, headers, agent }, (answer) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
      if (fresh) out['set-cookie'] = [...((out['set-cookie'] as string[] | undefined) ?? []), `${COOKIE}=${i}; Path=/; HttpOnly`];
      res.writeHead(answer.statusCode ?? 502, out);
      answer.pipe(res);
    });
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(503).end()));
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const { i } = pick(req.headers);
    counts.byBackend[i]++;
    counts.upgrades++;
    const up = net.connect({ host: '127.0.0.1', port: backends[i] });
    open.add(socket);
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let k = 0; k + 1 < req.rawHeaders.length; k += 2)
      if (req.rawHeaders[k].toLowerCase() !== 'x-rtg-forwarded') lines.push(`${req.rawHeaders[k]}: ${req.rawHeaders[k + 1]}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) up.write(head);
    up.pipe(socket);
    socket.pipe(up);
    const end = () => {
      open.delete(socket);
      up.destroy();
      socket.destroy();
    };
    up.on('error', end);
    up.on('close', end);
    socket.on('error', end);
    socket.on('close', end);
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    counts,
    async close() {
      for (const s of open) s.destroy();
      agent.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
