import { loadConfigOrExit } from '../core/config';
import { createLogger } from '../core/logger';
import { createMetrics } from '../core/metrics';
import { runService } from '../core/process';
import { startTracing } from '../core/telemetry';
import { createWorker } from './worker';

const cfg = loadConfigOrExit('worker');
const logger = createLogger('worker', cfg.logLevel, cfg.podName);
const worker = createWorker(cfg, logger, createMetrics());
const tracing = startTracing('worker', logger);
runService('worker', logger, async () => {
  await worker.stop();
  await (await tracing)();
});
tracing.then(() => worker.start()).catch((e) => {
  logger.fatal({ err: (e as Error).message }, 'worker failed to start');
  process.exit(1);
});
