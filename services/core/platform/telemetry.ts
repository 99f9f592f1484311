import {
  context,
  Context,
  INVALID_SPAN_CONTEXT,
  propagation,
  ROOT_CONTEXT,
  Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { Logger } from './logger';

/** The tracer every span of both services comes from. */
export function tracer() {
  return trace.getTracer('realtime-gateway');
}

/** True when the standard OTEL_* variables name an exporter endpoint (tracing is off otherwise). */
export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if (String(env.OTEL_SDK_DISABLED).toLowerCase() === 'true') return false;
  if (
    String(env.OTEL_TRACES_EXPORTER ?? '')
      .split(',')
      .includes('none')
  )
    return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts the OpenTelemetry Node SDK configured by the standard OTEL_* variables (endpoint,
 * protocol, headers, sampler, resource attributes); returns its shutdown. A no-op when no
 * exporter endpoint is set.
 */
export async function startTracing(service: string, logger: Logger): Promise<() => Promise<void>> {
  if (!tracingEnabled()) return async () => undefined;
  process.env.OTEL_SERVICE_NAME ??= `realtime-${service}`;
  // Loaded lazily: the SDK is heavy and unused when tracing is off.
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({ instrumentations: [] });
  sdk.start();
  tracingOn = true;
  logger.info({ endpoint: process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT }, 'tracing on');
  return () => sdk.shutdown().catch((e) => logger.warn({ err: (e as Error).message }, 'tracing shutdown failed'));
}

/** W3C traceparent of `ctx` (the active context by default), for carrying inside stream entries. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  if (!tracingOn) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent;
}

/** The context a traceparent (from a stream entry or an HTTP header) continues. */
export function contextFrom(traceparent: string | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent });
}

/** True once startTracing started the SDK: spans are skipped entirely otherwise (hot paths). */
let tracingOn = false;
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Runs `fn` in a new span (child of `parent` or the active context), recording errors. */
export async function inSpan<T>(
  name: string,
  opts: { kind?: SpanKind; parent?: Context; attributes?: Record<string, string | number | boolean> },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  if (!tracingOn) return fn(NO_SPAN);
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, attributes: opts.attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (e) {
    span.recordException(e as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
    throw e;
  } finally {
    span.end();
  }
}

export { SpanKind, SpanStatusCode, context, trace };
