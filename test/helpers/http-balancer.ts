import http from 'http';
import net from 'net';
import type { AddressInfo } from 'net';
import type { Duplex } from 'stream';

// A loopback HTTP balancer standing in for HAProxy / an ingress in tests whose backends change
// (a scale-out): every request and websocket upgrade goes to the next backend in turn, or, with
// `sticky`, to the backend its affinity cookie names when that one is still a backend, with the
// cookie inserted on the answer to a request that had none (HAProxy `cookie AFF insert preserve`:
// a cookie the backend sets itself, an expiry for instance, passes through untouched).

export const AFFINITY_COOKIE = 'AFF';
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'x-rtg-forwarded']);

export interface HttpBalancer {
  url: string;
  port: number;
  /** Backend ports; requests already under way keep theirs. */
  setBackends(ports: number[]): void;
  /** Handshakes (requests under /socket.io/ without `sid`) routed, by backend port. */
  handshakes: Map<number, number>;
  close(): Promise<void>;
}

function cookieOf(h: http.IncomingHttpHeaders): number | undefined {
  const m = new RegExp(`(?:^|;\\s*)${AFFINITY_COOKIE}=(\\d+)`).exec(h.cookie ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Starts the balancer on 127.0.0.1. */
export async function startHttpBalancer(ports: number[], opts: { sticky?: boolean } = {}): Promise<HttpBalancer> {
  let backends = [...ports];
  let next = 0;
  const handshakes = new Map<number, number>();
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  const open = new Set<Duplex>();
  const pick = (req: http.IncomingMessage): { port: number; fresh: boolean } => {
    const c = opts.sticky ? cookieOf(req.headers) : undefined;
    const port = c !== undefined && backends.includes(c) ? c : backends[next++ % backends.length];
    const url = req.url ?? '';
    if (url.startsWith('/socket.io/') && !/[?&]sid=/.test(url)) handshakes.set(port, (handshakes.get(port) ?? 0) + 1);
    return { port, fresh: Boolean(opts.sticky) && port !== c };
  };
  const headersOf = (h: http.IncomingHttpHeaders) => {
    const out: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v;
    return out;
  };
  const server = http.createServer((req, res) => {
    const { port, fresh } = pick(req);
    const up = http.request(
      { host: '127.0.0.1', port, method: req.method, path: req.url, headers: headersOf(req.headers), agent },
      (answer) => {
        const out = headersOf(answer.headers);
        const own = (out['set-cookie'] as string[] | undefined) ?? [];
        if (fresh && !own.some((c) => c.startsWith(`${AFFINITY_COOKIE}=`)))
          out['set-cookie'] = [...own, `${AFFINITY_COOKIE}=${port}; Path=/; HttpOnly`];
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
      },
    );
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(503).end()));
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const { port } = pick(req);
    const up = net.connect(port, '127.0.0.1');
    open.add(socket);
    open.add(up);
    const end = () => {
      socket.destroy();
      up.destroy();
      open.delete(socket);
      open.delete(up);
    };
    up.on('connect', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
        if (req.rawHeaders[i].toLowerCase() !== 'x-rtg-forwarded') lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', end);
    up.on('close', end);
    socket.on('error', end);
    socket.on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    handshakes,
    setBackends(p) {
      backends = [...p];
    },
    close() {
      for (const s of open) s.destroy();
      agent.destroy();
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
