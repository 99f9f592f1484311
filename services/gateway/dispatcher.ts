import type { Socket } from 'socket.io';
import type { GatewayContext } from './context';
import { invoke, refuseWithoutAck, type Ack, type Handler } from './events';
import { TokenBucket } from './rate-limit';

/** A socket's event token bucket (a symbol: it never travels in the recovery session). */
const BUCKET = Symbol('bucket');

/**
 * Answers owed per connection: events whose ack is not answered yet. A draining pod closes a
 * connection only once it answered them, so a client never loses the ack of an event this pod
 * processed.
 */
export class OwedAnswers {
  private owed = new WeakMap<object, number>();
  private moving = false;
  /** Connections to close as soon as they owe nothing (a batch of a paced drain, a rebalancing). */
  private marked = new WeakSet<object>();

  /** Counts an answer owed on the socket's connection; returns what to call once it went out. */
  begin(socket: Socket): () => void {
    const conn = socket.client;
    this.owed.set(conn, (this.owed.get(conn) ?? 0) + 1);
    return () => {
      const n = (this.owed.get(conn) ?? 1) - 1;
      this.owed.set(conn, n);
      if ((this.moving || this.marked.has(conn)) && n === 0) closeConnection(socket);
    };
  }

  /** True while the socket's connection owes an answer. */
  owes(socket: Socket): boolean {
    return Boolean(this.owed.get(socket.client));
  }

  /** From now on a connection is closed as soon as it owes nothing. */
  startMoving(): void {
    this.moving = true;
  }

  /** Moves one connection: closes it now, or as soon as it answered what it owes (the client reconnects elsewhere and recovers). */
  move(socket: Socket): void {
    if (this.owes(socket)) this.marked.add(socket.client);
    else closeConnection(socket);
  }
}

/** Closes a socket's whole Engine.IO connection (every namespace): the client reconnects and recovers. */
export function closeConnection(s: Socket): void {
  (s.client as unknown as { conn: { close(): void } }).conn.close();
}

/**
 * One dispatcher per namespace kind, shared by every socket (`this` is the socket): rate limit,
 * unknown-event filter, owed-answer bookkeeping, then the handler. Nothing per socket but its
 * token bucket, so an idle connection costs little memory.
 */
export function createDispatcher(ctx: GatewayContext, owed: OwedAnswers) {
  const { cfg, metrics, logger } = ctx;
  return (handlers: Record<string, Handler>) =>
    function dispatch(this: Socket, event: unknown, ...rest: unknown[]): void {
      const socket = this;
      const last = rest.length - 1;
      const own = typeof rest[last] === 'function' ? (rest[last] as Ack) : undefined;
      const ack = own ?? refuseWithoutAck(socket, typeof event === 'string' ? event : 'unknown', metrics);
      const st = socket as unknown as { [BUCKET]?: TokenBucket };
      const bucket = (st[BUCKET] ??= new TokenBucket(cfg.rateLimitPerSecond, cfg.rateLimitBurst));
      const handler = typeof event === 'string' && Object.prototype.hasOwnProperty.call(handlers, event) ? handlers[event] : undefined;
      if (!bucket.take()) {
        metrics.rateLimited.inc({ scope: 'event' });
        metrics.eventsReceived.inc({ event: handler ? (event as string) : 'unknown', outcome: 'rate_limited' });
        metrics.errors.inc({ code: 'rate_limited' });
        ack({ ok: false, error: { code: 'rate_limited', message: `more than ${cfg.rateLimitPerSecond} events per second` } });
        return;
      }
      if (!handler) {
        metrics.eventsReceived.inc({ event: 'unknown', outcome: 'bad_request' });
        metrics.errors.inc({ code: 'bad_request' });
        ack({ ok: false, error: { code: 'bad_request', message: `unknown event "${String(event).slice(0, 64)}"` } });
        return;
      }
      if (own) {
        const done = owed.begin(socket);
        let answered = false;
        rest[last] = (body: unknown) => {
          own(body);
          if (answered) return;
          answered = true;
          done();
        };
      }
      invoke(socket, event as string, rest, metrics, logger, (...args) => handler(ctx, socket, ...args));
    };
}
