import type { Namespace, Server } from 'socket.io';
import type { Logger } from './platform/logger';

/** Server-to-server requests (serverSideEmit) every process with the adapter answers, gateway or worker. */
export const RPC = {
  stats: 'rtg:stats',
  disconnectUser: 'rtg:disconnect-user',
} as const;

/** One pod's answer to RPC.stats. */
export interface LocalStats {
  id: string;
  connections: number;
  users: string[];
  rooms: string[];
}

/** Asks every other server; resolves with the answers that arrived within `timeoutMs`. */
export function askAll<T>(nsp: Namespace, event: string, arg: unknown, timeoutMs: number): Promise<T[]> {
  return new Promise((resolve) => {
    const collected: T[] = [];
    let done = false;
    const finish = (r: T[]) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => finish(collected), timeoutMs);
    const ask = () => {
      try {
        const r = nsp.serverSideEmit(
          event as never,
          arg as never,
          ((_err: Error | null, responses: T[]) => finish(responses ?? [])) as never,
        ) as unknown;
        if (r && typeof (r as Promise<unknown>).catch === 'function') (r as Promise<unknown>).catch(() => finish([]));
      } catch {
        finish([]);
      }
    };
    // No other server to ask (the in-memory adapter, whose serverSideEmit only logs a warning and
    // never answers, or a cluster of one): answer at once instead of waiting for the timeout.
    Promise.resolve(nsp.adapter.serverCount()).then((n) => (n > 1 ? ask() : finish([])), ask);
  });
}

/** Registers RPC answers for a process holding no sockets (the worker): empty stats, nothing disconnected. */
export function answerAsNonGateway(io: Server, logger: Logger): void {
  io.on(RPC.stats as never, ((_arg: unknown, cb: (s: LocalStats | null) => void) => cb?.(null)) as never);
  io.on(RPC.disconnectUser as never, ((_arg: unknown, cb: (n: number) => void) => cb?.(0)) as never);
  logger.debug('answering cluster requests as a non-gateway');
}
