/**
 * Diagnostics only: preloaded (`node -r`) into gateway processes when BENCH_GATEWAY_DIAG is set, to
 * switch one gateway feature off at run time and measure what it costs, without editing services/.
 * A gateway run this way is NOT the product; the benchmark notes say so.
 *
 *   no-als           AsyncLocalStorage.run() just calls its function and getStore() returns
 *                    undefined: async_hooks stay off (the delivery-latency histogram loses its
 *                    origin timestamps, nothing else changes);
 *   no-backpressure  the outbound buffer bound is not installed (exports of
 *                    services/gateway/backpressure replaced by no-ops where they install it).
 */
import { AsyncLocalStorage } from 'async_hooks';
import path from 'path';

const diag = new Set(
  (process.env.GATEWAY_DIAG ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

if (diag.has('no-als')) {
  const proto = AsyncLocalStorage.prototype as unknown as Record<string, unknown>;
  proto.run = function (_store: unknown, fn: (...a: unknown[]) => unknown, ...args: unknown[]) {
    return fn(...args);
  };
  proto.getStore = () => undefined;
}

if (diag.has('no-backpressure')) {
  // server.js reads these exports at call time, so replacing them on the module object is enough.
  const bp = require(path.join(__dirname, '../services/gateway/backpressure.js')) as Record<string, unknown>;
  for (const name of ['boundOutboundBuffers', 'boundOutboundBuffer', 'armOutboundBound']) {
    if (typeof bp[name] === 'function') bp[name] = () => undefined;
  }
}

for (const d of diag)
  if (!['no-als', 'no-backpressure'].includes(d)) process.stderr.write(`diag-preload: unknown GATEWAY_DIAG entry "${d}" ignored\n`);
