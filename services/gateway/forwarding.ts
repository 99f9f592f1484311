import { randomBytes } from 'crypto';
import http from 'http';
import net from 'net';
import type { AddressInfo } from 'net';
import type { Duplex } from 'stream';
import type { Config } from '../core/platform/config';
import type { Logger } from '../core/platform/logger';
import type { FORWARD_OUTCOMES, Metrics } from '../core/platform/metrics';
import { PodDirectory, type PodTarget } from '../core/pods/directory';
import type { PodRegistry } from '../core/pods/registry';

// Sticky sessions optional (ARCHITECTURE.md rule 11): an Engine.IO session id names the pod that
// holds the session (`<pod tag>.<random>`), and a polling request or a websocket upgrade carrying
// the id of another pod's session is forwarded to that pod, once, at the address its heartbeat
// advertises. The request's body and the answer stream through (a long-polling GET stays open
// across the hop, an upgraded websocket is piped), bounded in number and time, and counted in
// realtime_gateway_forwarded_requests_total{kind,outcome}.

/** Set by a pod on every request it forwards (the public edge strips it from client requests): a marked request is never forwarded again. */
export const FORWARDED_HEADER = 'x-rtg-forwarded';

export type ForwardKind = 'polling' | 'websocket';
export type ForwardOutcome = (typeof FORWARD_OUTCOMES)[number];

const SID = /^([A-Za-z0-9_-]{8})\.[A-Za-z0-9_-]{20}$/;

/** A pod tag: 8 base64url characters, random per process (a restarted pod's old session ids name no live pod). */
export function newPodTag(): string {
  return randomBytes(6).toString('base64url');
}

/** An Engine.IO session id of the pod tagged `tag`: `<tag>.<20 base64url characters>` (120 random bits, as many as engine.io's own ids). */
export function sessionId(tag: string): string {
  return `${tag}.${randomBytes(15).toString('base64url')}`;
}

/** The pod tag a session id names, or undefined when it is not one of ours (garbage, an old build's id). */
export function tagOf(sid: string): string | undefined {
  return SID.exec(sid)?.[1];
}

/** Where a request goes: this pod (its own session, a handshake, anything but Engine.IO), a forwarded request for another pod (`loop`), or that pod. */
export type Route = { to: 'local' } | { to: 'loop' } | { to: 'owner'; tag: string | undefined };
const LOCAL: Route = { to: 'local' };

/** The route of a request to `path` (Socket.IO's, `/socket.io/`) on the pod tagged `ownTag`. */
export function routeOf(url: string, headers: http.IncomingHttpHeaders, ownTag: string, path: string): Route {
  const q = url.indexOf('?');
  if (q < 0 || !url.startsWith(path)) return LOCAL;
  // engine.io reads the query into an object: the last `sid` wins there, so it does here.
  const sid = new URLSearchParams(url.slice(q + 1)).getAll('sid').pop();
  if (!sid) return LOCAL;
  const tag = tagOf(sid);
  if (tag === ownTag) return LOCAL;
  if (headers[FORWARDED_HEADER] !== undefined) return { to: 'loop' };
  return { to: 'owner', tag };
}

/** The address the other gateways reach this pod at: ADVERTISE_ADDRESS, else `http://<POD_IP>:<port>` (POD_IP: HOST when concrete, else 127.0.0.1). */
export function advertisedAddress(cfg: Pick<Config, 'advertiseAddress' | 'podIp' | 'host'>, port: number): string {
  if (cfg.advertiseAddress) return cfg.advertiseAddress;
  const host = cfg.podIp ?? (['', '0.0.0.0', '::', '[::]'].includes(cfg.host) ? '127.0.0.1' : cfg.host);
  return `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}

/** Hop-by-hop headers (RFC 9110 7.6.1): never relayed; node frames bodies anew on each side. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', FORWARDED_HEADER]);

/** Headers of a forwarded polling request: the client's, without hop-by-hop ones, marked as forwarded by `tag`. */
export function forwardHeaders(h: http.IncomingHttpHeaders, tag: string): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  out[FORWARDED_HEADER] = tag;
  return out;
}

/** Headers of the owner's answer as relayed to the client. */
export function answerHeaders(h: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

/** The head of a websocket upgrade as the client sent it (its Upgrade and Connection headers kept), marked as forwarded by `tag`. */
export function upgradeHead(req: http.IncomingMessage, tag: string): Buffer {
  const lines = [`${req.method} ${req.url} HTTP/1.1`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
    if (req.rawHeaders[i].toLowerCase() !== FORWARDED_HEADER) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
  lines.push(`${FORWARDED_HEADER}: ${tag}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

const REFUSAL_BODY = JSON.stringify({ error: { code: 'unavailable', message: 'the pod holding this session cannot be reached' } });
const REFUSAL_HEAD = `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${REFUSAL_BODY.length}\r\nConnection: close\r\n\r\n`;

export interface ForwarderOptions {
  ownTag: string;
  /** Socket.IO's path (`/socket.io/`). */
  path: string;
  maxConnections: number;
  connectTimeoutMs: number;
  timeoutMs: number;
}

/** What a forward does when it cannot be forwarded: `refuse` answers 503 (counted `outcome`), `gone` serves it here (counted `no_owner`: this pod answers 400 as Socket.IO does). */
interface Fallback {
  refuse(outcome: ForwardOutcome): void;
  gone(): void;
  /** After a failed connect: 400 when the owner left the registry meanwhile (it shut down), else 503. */
  unreachable(outcome: ForwardOutcome): void;
}

/** Forwards requests for other pods' Engine.IO sessions to them (see the top of this file). */
export class Forwarder {
  private active = 0;
  private readonly open = new Set<{ destroy(): void }>();
  /**
   * Keep-alive connections to the owners. With a `timeout` set, node's agent also honours the
   * owner's `Keep-Alive: timeout=5` hint, closing an idle connection a second before the owner
   * would (a request sent on a connection the owner is closing would fail).
   */
  private readonly agent: http.Agent;

  constructor(
    private readonly dir: PodDirectory,
    private readonly opts: ForwarderOptions,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 64, timeout: opts.timeoutMs });
  }

  /** True when it took `req` over; `local` serves it here after all (its owner is gone). */
  request(req: http.IncomingMessage, res: http.ServerResponse, local: () => void): boolean {
    const tag = this.route(req, 'polling');
    if (tag === false) return false;
    const refuse = () => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(503, { 'content-type': 'application/json', connection: 'close' }).end(REFUSAL_BODY);
    };
    this.withOwner(tag, 'polling', local, refuse, (t, f) => this.proxy(req, res, t, f));
    return true;
  }

  /** The same for an upgrade request (a websocket upgrade of another pod's polling session). */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, local: () => void): boolean {
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return false;
    const tag = this.route(req, 'websocket');
    if (tag === false) return false;
    const refuse = () => {
      socket.on('error', () => undefined);
      if (socket.writable) socket.end(REFUSAL_HEAD + REFUSAL_BODY);
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    this.withOwner(tag, 'websocket', local, refuse, (t, f) => this.tunnel(req, socket, head, t, f));
    return true;
  }

  /**
   * Serves a new session's polling handshake (no `sid`) on the pod tagged `tag` instead of here
   * (rebalancing: this pod is above its fair share, that one below it); here after all when that
   * pod is unknown, unreachable or the forwards are at their bound. Counted as a polling forward.
   */
  handshake(tag: string, req: http.IncomingMessage, res: http.ServerResponse, local: () => void): void {
    const t = this.opts.maxConnections > 0 ? this.dir.peek(tag) : undefined;
    if (!t || this.active >= this.opts.maxConnections) return local();
    let fellBack = false;
    const here = () => {
      if (fellBack || res.headersSent) return;
      fellBack = true;
      local();
    };
    this.proxy(req, res, t, { refuse: here, gone: here, unreachable: here });
  }

  /** Ends every forwarded request and tunnel (shutdown). */
  close(): void {
    for (const c of [...this.open]) c.destroy();
    this.agent.destroy();
  }

  /** false: this pod serves it; otherwise the owner's tag (undefined: not a tag of ours). */
  private route(req: http.IncomingMessage, kind: ForwardKind): string | undefined | false {
    if (this.opts.maxConnections === 0) return false;
    const r = routeOf(req.url ?? '', req.headers, this.opts.ownTag, this.opts.path);
    if (r.to === 'local') return false;
    if (r.to === 'loop') {
      // Forwarded here, yet not ours: the sender's registry is stale (an IP reused by a new pod). Never again: 400 here.
      this.count(kind, 'loop');
      return false;
    }
    return r.tag;
  }

  private withOwner(
    tag: string | undefined,
    kind: ForwardKind,
    local: () => void,
    answer503: () => void,
    go: (t: PodTarget, f: Fallback) => void,
  ): void {
    const f: Fallback = {
      refuse: (outcome) => (this.count(kind, outcome), answer503()),
      gone: () => (this.count(kind, 'no_owner'), local()),
      unreachable: (outcome) => {
        if (tag === undefined) return f.refuse(outcome);
        void this.dir.confirm(tag).then((still) => (still ? f.refuse(outcome) : f.gone()));
      },
    };
    const admit = (t: PodTarget) => (this.active >= this.opts.maxConnections ? f.refuse('overloaded') : go(t, f));
    if (tag === undefined) return f.gone();
    const hit = this.dir.peek(tag);
    if (hit) return admit(hit);
    void this.dir.lookup(tag).then((r) => (r === 'unknown' ? f.gone() : r === 'unavailable' ? f.refuse('unavailable') : admit(r)));
  }

  private count(kind: ForwardKind, outcome: ForwardOutcome): void {
    this.metrics.forwardedRequests.inc({ kind, outcome });
  }

  private hold(c: { destroy(): void }): () => void {
    this.active++;
    this.open.add(c);
    this.metrics.forwardedConnections.set(this.active);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.active--;
      this.open.delete(c);
      this.metrics.forwardedConnections.set(this.active);
    };
  }

  private failed(t: PodTarget, kind: ForwardKind, outcome: ForwardOutcome): void {
    this.logger.debug({ pod: t.pod, address: t.address, kind, outcome }, 'forwarding to the owner of a session failed');
  }

  /** A polling request, streamed to the owner and its answer streamed back (a long-polling GET stays open until the owner answers). */
  private proxy(req: http.IncomingMessage, res: http.ServerResponse, t: PodTarget, f: Fallback): void {
    if (req.destroyed) return this.count('polling', 'aborted');
    let up: http.ClientRequest;
    try {
      up = http.request({
        host: t.host,
        port: t.port,
        method: req.method,
        path: req.url,
        headers: forwardHeaders(req.headers, this.opts.ownTag),
        agent: this.agent,
      });
    } catch {
      return f.gone(); // a request node cannot send on (it parsed it, so this should not happen): served here, 400
    }
    const release = this.hold(up);
    let settled = false;
    let connected = false;
    const timers: NodeJS.Timeout[] = [];
    const settle = () => {
      if (settled) return false;
      settled = true;
      timers.forEach(clearTimeout);
      release();
      return true;
    };
    const fail = (outcome: ForwardOutcome) => {
      if (!settle()) return;
      up.destroy();
      this.failed(t, 'polling', outcome);
      if (res.headersSent) return (this.count('polling', outcome), res.destroy());
      if (outcome === 'unreachable' && !connected) f.unreachable(outcome);
      else f.refuse(outcome);
    };
    timers.push(setTimeout(() => fail('timeout'), this.opts.timeoutMs));
    up.on('socket', (s: net.Socket) => {
      s.setNoDelay(true);
      if (!s.connecting) return void (connected = true);
      const t = setTimeout(() => fail('unreachable'), this.opts.connectTimeoutMs);
      timers.push(t);
      s.once('connect', () => {
        connected = true;
        clearTimeout(t);
      });
    });
    up.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answerHeaders(answer.headers));
      answer.pipe(res);
      answer.on('close', () => {
        if (!answer.complete) fail('unreachable');
      });
    });
    up.on('error', () => fail('unreachable'));
    res.on('finish', () => {
      if (settle()) this.count('polling', 'ok');
    });
    res.on('close', () => {
      if (!settle()) return;
      this.count('polling', 'aborted');
      up.destroy();
    });
    req.pipe(up);
  }

  /** A websocket upgrade: the request head goes to the owner, then both directions are piped until either side closes. */
  private tunnel(req: http.IncomingMessage, socket: Duplex, head: Buffer, t: PodTarget, f: Fallback): void {
    if (socket.destroyed) return this.count('websocket', 'aborted');
    const up = net.connect({ host: t.host, port: t.port });
    up.setNoDelay(true);
    let state: 'connecting' | 'waiting' | 'open' | 'done' = 'connecting';
    let timer = setTimeout(() => refuse('unreachable'), this.opts.connectTimeoutMs);
    const end = () => {
      if (state === 'done') return;
      state = 'done';
      clearTimeout(timer);
      release();
      up.destroy();
      socket.destroy();
    };
    const release = this.hold({ destroy: end });
    /** Before the owner answered: a 503 to the client (or the 400 of a session whose owner left). */
    const refuse = (outcome: ForwardOutcome) => {
      if (state === 'done' || state === 'open') return end();
      const neverConnected = state === 'connecting';
      state = 'done';
      clearTimeout(timer);
      release();
      up.destroy();
      this.failed(t, 'websocket', outcome);
      if (outcome === 'unreachable' && neverConnected) f.unreachable(outcome);
      else f.refuse(outcome);
    };
    up.once('connect', () => {
      if (state !== 'connecting') return;
      state = 'waiting';
      clearTimeout(timer);
      timer = setTimeout(() => refuse('timeout'), this.opts.timeoutMs);
      up.write(upgradeHead(req, this.opts.ownTag));
      if (head.length) up.write(head);
      socket.pipe(up);
    });
    up.once('data', () => {
      if (state !== 'waiting') return;
      state = 'open';
      clearTimeout(timer);
      this.count('websocket', 'ok');
    });
    up.pipe(socket);
    up.on('error', () => (state === 'open' ? end() : refuse('unreachable')));
    up.on('close', () => (state === 'open' ? end() : refuse('unreachable')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (state === 'connecting' || state === 'waiting') this.count('websocket', 'aborted');
      end();
    });
  }
}

/**
 * Puts `fwd` in front of the server's request and upgrade listeners (call it after Socket.IO
 * attached and after serveUpgradesAsHttp): a request it takes over never reaches engine.io; the
 * others, and those whose owner turns out to be gone, go to the listeners as before.
 */
export function installForwarding(server: http.Server, fwd: Forwarder): void {
  const onRequest = server.listeners('request') as http.RequestListener[];
  server.removeAllListeners('request');
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const local = () => {
      for (const l of onRequest) l.call(server, req, res);
    };
    if (!fwd.request(req, res, local)) local();
  });
  type UpgradeListener = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  const onUpgrade = server.listeners('upgrade') as UpgradeListener[];
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const local = () => {
      for (const l of onUpgrade) l.call(server, req, socket, head);
    };
    if (!fwd.upgrade(req, socket, head, local)) local();
  });
}

export interface Forwarding {
  tag: string;
  directory: PodDirectory;
  forwarder: Forwarder;
  /** A new Engine.IO session id of this pod (engine.io's `generateId`). */
  newId(): string;
  /** What the heartbeat advertises: the tag and this pod's address. */
  identity(): { tag: string; address?: string };
}

/** The forwarding of one gateway: its tag, its view of the other pods, and the forwarder in front of `server`. */
export function createForwarding(
  cfg: Config,
  registry: PodRegistry,
  server: http.Server,
  metrics: Metrics,
  logger: Logger,
  path: string,
): Forwarding {
  const tag = newPodTag();
  const address = () => {
    const a = server.address() as AddressInfo | null;
    return a && typeof a === 'object' ? advertisedAddress(cfg, a.port) : undefined;
  };
  const directory = new PodDirectory(() => registry.pods(), { tag, address });
  const forwarder = new Forwarder(
    directory,
    {
      ownTag: tag,
      path,
      maxConnections: cfg.forwardMaxConnections,
      connectTimeoutMs: cfg.forwardConnectTimeoutMs,
      timeoutMs: cfg.forwardTimeoutMs,
    },
    metrics,
    logger,
  );
  installForwarding(server, forwarder);
  return { tag, directory, forwarder, newId: () => sessionId(tag), identity: () => ({ tag, address: address() }) };
}
