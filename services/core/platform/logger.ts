import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logger; never pass tokens or message bodies to it. */
export function createLogger(service: string, level = 'info', pod?: string): Logger {
  return pino({ level, base: { service, pod }, timestamp: pino.stdTimeFunctions.isoTime });
}
