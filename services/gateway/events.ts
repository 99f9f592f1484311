import type { Socket } from 'socket.io';
import { z } from 'zod';
import { errorBody, GatewayError, LimitError } from '../core/platform/errors';
import type { Logger } from '../core/platform/logger';
import type { Metrics } from '../core/platform/metrics';
import type { GatewayContext } from './context';
import { zodMessage } from '../core/schemas';
import { inSpan, SpanKind, SpanStatusCode } from '../core/platform/telemetry';

export type Ack = (body: unknown) => void;

/** Splits an ack callback off the end of an event's arguments. */
export function splitAck(args: unknown[]): { args: unknown[]; ack?: Ack } {
  const last = args[args.length - 1];
  if (typeof last === 'function') return { args: args.slice(0, -1), ack: last as Ack };
  return { args };
}

/** Parses with a zod schema, turning failures into `bad_request`. */
export function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new GatewayError('bad_request', zodMessage(r.error));
  return r.data;
}

/**
 * The answer to an event sent without an ack: nothing on success (the seed's clients expect no
 * answer), a `request-error` `{ event, error }` event on a refusal, counted by code.
 */
export function refuseWithoutAck(socket: Socket, event: string, metrics: Metrics): Ack {
  return (body) => {
    const b = body as { ok?: boolean; error?: { code: string; message: string } };
    if (b.ok !== false || !b.error) return;
    metrics.requestErrors.inc({ code: b.error.code });
    socket.emit('request-error', { event: event.slice(0, 64), error: b.error });
  };
}

/** A client event's handler: shared by every socket (no per-socket closures), answers through the ack. */
export type Handler = (ctx: GatewayContext, socket: Socket, ...args: unknown[]) => Promise<object>;

/**
 * Runs one client event: runs the handler and answers `{ ok: true, ...result }` or
 * `{ ok: false, error }` through the ack; an event without one is processed the same way, and a
 * refusal reaches the socket as `request-error` (PROTOCOL.md, Acknowledgements).
 * A handler can never crash the process or disconnect the socket.
 */
export function invoke(
  socket: Socket,
  event: string,
  raw: unknown[],
  metrics: Metrics,
  logger: Logger,
  fn: (...args: unknown[]) => Promise<object>,
): void {
  const split = splitAck(raw);
  const args = split.args;
  const ack = split.ack ?? refuseWithoutAck(socket, event, metrics);
  const end = metrics.eventDuration.startTimer({ event });
  inSpan(
    `socket.io event ${event}`,
    { kind: SpanKind.SERVER, attributes: { 'socket.io.event': event, 'socket.io.namespace': socket.nsp.name } },
    (span) =>
      fn(...args).catch((e: unknown) => {
        span.setStatus({ code: SpanStatusCode.ERROR, message: errorBody(e).error.code });
        throw e;
      }),
  ).then(
    (result) => {
      end();
      metrics.eventsReceived.inc({ event, outcome: 'ok' });
      ack({ ok: true, ...result });
    },
    (err: unknown) => {
      end();
      const body = errorBody(err);
      if (body.error.code === 'internal')
        logger.error({ event, err: (err as Error)?.stack ?? String(err), sid: socket.id }, 'event handler failed');
      metrics.eventsReceived.inc({ event, outcome: body.error.code });
      metrics.errors.inc({ code: body.error.code });
      if (err instanceof LimitError) metrics.limitExceeded.inc({ limit: err.limit });
      try {
        ack(body);
      } catch {
        /* the connection is gone */
      }
    },
  );
}
