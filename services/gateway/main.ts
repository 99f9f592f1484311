import { loadConfigOrExit } from '../core/platform/config';
import { createLogger } from '../core/platform/logger';
import { createMetrics } from '../core/platform/metrics';
import { runService } from '../core/platform/process';
import { startTracing } from '../core/platform/telemetry';
import { createGateway } from './server';

const cfg = loadConfigOrExit('gateway');
const logger = createLogger('gateway', cfg.logLevel, cfg.podName);
if (cfg.authMode === 'insecure')
  logger.warn('AUTH_MODE=insecure: auth.userId is accepted WITHOUT a signature; never use this in production');
if (!cfg.redisUrl) logger.info('REDIS_URL unset: single node on the in-memory engine');
const gateway = createGateway(cfg, logger, createMetrics());
const tracing = startTracing('gateway', logger);
runService('gateway', logger, async () => {
  await gateway.stop();
  await (
    await tracing
  )();
});
tracing
  .then(() => gateway.start())
  .catch((e) => {
    logger.fatal({ err: (e as Error).message }, 'gateway failed to start');
    process.exit(1);
  });
