import type { Config } from '../core/platform/config';

/** The Socket.IO server of a gateway: the options every gateway (and the bare baseline of the benchmarks) uses. */
export function socketServerOptions(cfg: Config) {
  return {
    path: '/socket.io/',
    transports: cfg.transports as ('polling' | 'websocket')[],
    maxHttpBufferSize: cfg.maxHttpBufferSize,
    cors: { origin: cfg.corsOrigins.includes('*') ? true : cfg.corsOrigins, credentials: true },
    connectionStateRecovery: { maxDisconnectionDuration: cfg.recoveryWindowMs, skipMiddlewares: false },
    serveClient: true,
  };
}
