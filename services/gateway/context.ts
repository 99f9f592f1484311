import type { Server, Socket } from 'socket.io';
import type { Config } from '../core/config';
import type { Engine } from '../core/engine';
import type { Logger } from '../core/logger';
import type { Metrics } from '../core/metrics';

/** What the gateway's modules share: configuration, engine, telemetry, and a few helpers. */
export interface GatewayContext {
  cfg: Config;
  logger: Logger;
  metrics: Metrics;
  engine: Engine;
  io: Server;
  /** Throws `unavailable` while Redis is down. */
  requireAvailable(): void;
  /** Persists the socket's recovery session now (Redis engine). */
  persistSession(socket: Socket): void;
  /** True once SIGTERM started the drain. */
  draining(): boolean;
}
