import { loadConfigOrExit } from '../core/platform/config';
import { createLogger } from '../core/platform/logger';
import { createMetrics } from '../core/platform/metrics';
import { runService } from '../core/platform/process';
import { startTracing } from '../core/platform/telemetry';
import { createWorker } from './worker';

const cfg = loadConfigOrExit('worker');
const logger = createLogger('worker', cfg.logLevel, cfg.podName);
const worker = createWorker(cfg, logger, createMetrics());
const tracing = startTracing('worker', logger);
runService('worker', logger, async () => {
  await worker.stop();
  await (
    await tracing
  )();
});
tracing
  .then(() => worker.start())
  .catch((e) => {
    logger.fatal({ err: (e as Error).message }, 'worker failed to start');
    process.exit(1);
  });
