import { closestVariable, unknownVariables } from './config';
import type { Logger } from './logger';

/** Process-level wiring shared by both services: warnings at start-up, signals, stray rejections. */
export function runService(name: string, logger: Logger, stop: () => Promise<void>): void {
  for (const v of unknownVariables()) {
    const meant = closestVariable(v);
    logger.warn(
      { variable: v, ...(meant ? { didYouMean: meant } : {}) },
      `unknown environment variable ${v} ignored${meant ? ` (did you mean ${meant}?)` : ' (typo?)'}`,
    );
  }
  process.on('unhandledRejection', (reason) => {
    // A background promise of a library (e.g. a Redis command during an outage): log, keep serving.
    logger.warn({ err: reason instanceof Error ? reason.message : String(reason) }, 'unhandled rejection');
  });
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal: sig }, `${name} shutting down`);
    stop().then(
      () => process.exit(0),
      (e) => {
        logger.error({ err: (e as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
