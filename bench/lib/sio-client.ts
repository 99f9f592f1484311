/**
 * A minimal Socket.IO v4 client over a raw `ws` websocket (Engine.IO v4, websocket transport only,
 * main namespace, text packets only). It keeps the client side cheap so that thousands of
 * connections and hundreds of thousands of deliveries cost the benchmark machine as little as
 * possible. Events are handed over raw (`42[...]`) so a receiver can pick out what it needs
 * without a full JSON.parse.
 *
 * Engine.IO packets: 0 open, 1 close, 2 ping, 3 pong, 4 message. Socket.IO packets inside a 4:
 * 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR.
 */
import WebSocket from 'ws';

export interface ConnectOptions {
  /** Sent in the CONNECT packet (`40{...}`); omit for `40`. */
  auth?: Record<string, unknown>;
  /** Source address on loopback (127.0.0.x) to spread ephemeral ports. */
  localAddress?: string;
  timeoutMs?: number;
  /**
   * Set before the connection opens: packets the server writes right behind its CONNECT answer
   * (a recovered session's missed packets) arrive in the same network read, before `connect()`
   * resolves.
   */
  onEvent?: (raw: string) => void;
  /**
   * Keep `lastOffset` as socket.io-client v4 does (the last argument of every event, when it is a
   * string), so that a reconnect can send `{ pid, offset }` (see `recoveryAuth`).
   */
  trackOffset?: boolean;
}

/**
 * The last argument of a raw event packet (`42[...]` / `42<ack id>[...]`) when it is a string,
 * read from the end without parsing the whole packet (falls back to JSON.parse for escapes).
 */
export function lastStringArg(raw: string): string | undefined {
  if (!raw.endsWith('"]')) return undefined;
  const open = raw.lastIndexOf('"', raw.length - 3);
  if (open < 0) return undefined;
  const before = raw.charCodeAt(open - 1);
  if (before !== 44 && before !== 91) return undefined; // ',' or '['
  const value = raw.slice(open + 1, raw.length - 2);
  if (!value.includes('\\')) return value;
  try {
    const args = JSON.parse(raw.slice(raw.indexOf('['))) as unknown[];
    const last = args[args.length - 1];
    return typeof last === 'string' ? last : undefined;
  } catch {
    return undefined;
  }
}

export class SioClient {
  sid?: string;
  /** The session id of connection state recovery (the server's CONNECT answer), when it has one. */
  pid?: string;
  /** With `trackOffset`: the last string argument of the last event (socket.io-client's `_lastOffset`). */
  lastOffset?: string;
  connected = false;
  /** Raw event packets (the whole `42...` string). */
  onEvent?: (raw: string) => void;
  onClose?: () => void;
  private acks = new Map<number, (v: unknown) => void>();
  private nextAck = 0;

  private constructor(public readonly ws: WebSocket) {}

  /** Opens a websocket, sends CONNECT, resolves once the server answers CONNECT (rejects on CONNECT_ERROR). */
  static connect(baseUrl: string, opts: ConnectOptions = {}): Promise<SioClient> {
    const url = `${baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
    const ws = new WebSocket(url, { perMessageDeflate: false, localAddress: opts.localAddress, handshakeTimeout: opts.timeoutMs ?? 10000 });
    const c = new SioClient(ws);
    c.onEvent = opts.onEvent;
    const track = opts.trackOffset === true;
    return new Promise<SioClient>((resolve, reject) => {
      let settled = false;
      const done = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          ws.terminate();
          reject(err);
        } else resolve(c);
      };
      const timer = setTimeout(() => done(new Error('connect timeout')), opts.timeoutMs ?? 10000);
      ws.on('error', (e) => done(e));
      ws.on('close', () => {
        c.connected = false;
        done(new Error('closed before connect'));
        for (const cb of c.acks.values()) cb({ ok: false, error: { code: 'closed', message: 'connection closed' } });
        c.acks.clear();
        c.onClose?.();
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) return;
        const s = data.toString();
        switch (s.charCodeAt(0)) {
          case 48: // '0' open
            ws.send(opts.auth ? `40${JSON.stringify(opts.auth)}` : '40');
            return;
          case 50: // '2' ping
            ws.send('3');
            return;
          case 49: // '1' close
            ws.close();
            return;
          case 52: // '4' message
            break;
          default:
            return;
        }
        switch (s.charCodeAt(1)) {
          case 50: // '2' EVENT
            if (track) {
              const off = lastStringArg(s);
              if (off !== undefined) c.lastOffset = off;
            }
            c.onEvent?.(s);
            return;
          case 51: {
            // '3' ACK: 43<id>[...]
            let i = 2;
            while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
            const id = Number(s.slice(2, i));
            const cb = c.acks.get(id);
            if (cb) {
              c.acks.delete(id);
              const args = JSON.parse(s.slice(i)) as unknown[];
              cb(args[0]);
            }
            return;
          }
          case 48: // '0' CONNECT
            try {
              const answer = JSON.parse(s.slice(2)) as { sid?: string; pid?: string };
              c.sid = answer.sid;
              c.pid = answer.pid;
            } catch {
              /* no payload */
            }
            c.connected = true;
            done();
            return;
          case 52: {
            // '4' CONNECT_ERROR
            let msg = s.slice(2);
            try {
              msg = (JSON.parse(msg) as { message?: string }).message ?? msg;
            } catch {
              /* raw */
            }
            done(new Error(`connect_error: ${msg}`));
            return;
          }
          case 49: // '1' DISCONNECT by the server
            c.connected = false;
            return;
        }
      });
    });
  }

  /** Emits an event; resolves with the first argument of the server's ack. */
  emitWithAck(event: string, ...args: unknown[]): Promise<unknown> {
    const id = this.nextAck++;
    return new Promise((resolve) => {
      // ws drops a send on a closing or closed socket without a word: answer at once, as the close handler does.
      if (this.ws.readyState !== WebSocket.OPEN) return resolve({ ok: false, error: { code: 'closed', message: 'connection closed' } });
      this.acks.set(id, resolve);
      this.ws.send(`42${id}${JSON.stringify([event, ...args])}`);
    });
  }

  emit(event: string, ...args: unknown[]): void {
    this.ws.send(`42${JSON.stringify([event, ...args])}`);
  }

  /**
   * What socket.io-client v4 sends in its CONNECT packet on a reconnect: `{ pid, offset, ...auth }`
   * (Socket#_sendConnectPacket), once it has a pid; `offset` is left out while it has none (JSON
   * drops an undefined value, as socket.io-client's does).
   */
  recoveryAuth(auth: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
    if (!this.pid) return auth;
    return { pid: this.pid, ...(this.lastOffset !== undefined ? { offset: this.lastOffset } : {}), ...auth };
  }

  /** Closes at once (no close handshake), which is all a benchmark needs. */
  terminate(): void {
    this.ws.terminate();
  }
}

/** Connects `n` clients with at most `concurrency` handshakes in flight; rejects on the first failure. */
export async function connectMany(n: number, concurrency: number, make: (i: number) => Promise<SioClient>): Promise<SioClient[]> {
  const out: SioClient[] = new Array(n);
  let next = 0;
  let failed: Error | undefined;
  const workers = Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n && !failed) {
      const i = next++;
      try {
        out[i] = await make(i);
      } catch (e) {
        failed = new Error(`client ${i}: ${(e as Error).message}`);
      }
    }
  });
  await Promise.all(workers);
  if (failed) {
    for (const c of out) c?.terminate();
    throw failed;
  }
  return out;
}
