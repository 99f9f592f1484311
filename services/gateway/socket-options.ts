import type { Config } from '../core/platform/config';

/** The Socket.IO server of a gateway: the options every gateway (and the bare baseline of the benchmarks) uses. */
export function socketServerOptions(cfg: Config) {
  return {
    path: '/socket.io/',
    transports: cfg.transports as ('polling' | 'websocket')[],
    maxHttpBufferSize: cfg.maxHttpBufferSize,
    cors: corsOptions(cfg.corsOrigins),
    connectionStateRecovery: { maxDisconnectionDuration: cfg.recoveryWindowMs, skipMiddlewares: false },
    serveClient: true,
    // A workspace namespace nobody is connected to any more goes, with its adapter and subscriptions.
    cleanupEmptyChildNamespaces: true,
  };
}

/**
 * CORS of the Socket.IO endpoints: `*` answers `Access-Control-Allow-Origin: *` without credentials
 * (browsers then send no cookies across origins, and no origin is ever reflected); a list reflects
 * only those origins, with `Access-Control-Allow-Credentials: true`.
 */
export function corsOptions(origins: string[]): { origin: '*' | string[]; credentials: boolean } {
  return origins.includes('*') ? { origin: '*', credentials: false } : { origin: origins, credentials: true };
}
