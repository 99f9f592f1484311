/**
 * Connection state recovery as the gateway uses it, for both engines: restores bound to their user,
 * and the socket's session kept up to date as it joins and leaves rooms (the clustered engine
 * stores it in Redis, hash by hash field; the single node keeps Socket.IO's in-memory sessions).
 */
import type { Namespace, Socket } from 'socket.io';
import type { Metrics } from '../platform/metrics';
import type { RedisClient } from '../redis/client';
import { LocalAdapter } from './local-adapter';
import { restore, type Restored, type RefusedReason, type RestoreLimits } from './restore';
import type { SessionStore } from './sessions';
import { ShardedAdapter } from './sharded-adapter';
import { NSP_ROOM } from './shards';

export interface Recovery {
  /** Restores session `pid` for `userId` (adapter room names `allowed` by the new token are kept). */
  restore(
    nsp: Namespace,
    pid: string,
    offset: string,
    userId: string,
    allowed: (room: string) => boolean,
  ): Promise<Restored | RefusedReason>;
  /** Resolves once the rooms' broadcasts reach this pod, and records them in the socket's session. */
  joined(socket: Socket, rooms: string[]): Promise<void>;
  /** The socket left rooms. */
  left(socket: Socket, rooms: string[]): Promise<void>;
  /** A fresh socket: its session starts (its own user room and the namespace already joined). */
  started(socket: Socket, rooms: string[]): Promise<void>;
  /** A recovered socket: its session's data is its new principal now. */
  resumed(socket: Socket): Promise<void>;
  /** The connection dropped: the session lives for the recovery window. */
  dropped(socket: Socket): Promise<void>;
  /** The client left on purpose: its session ends. */
  ended(socket: Socket): Promise<void>;
  /** Keeps the sessions of connected sockets alive. */
  refresh(sockets: Socket[]): Promise<void>;
}

const pidOf = (socket: Socket) => (socket as unknown as { pid?: string }).pid;

/** The clustered engine's recovery: sessions in Redis, restores from the rooms' histories. */
export function redisRecovery(sessions: SessionStore, redis: RedisClient, metrics: Metrics, limits: RestoreLimits): Recovery {
  const adapterOf = (nsp: Namespace) => {
    const a = nsp.adapter as unknown;
    if (!(a instanceof ShardedAdapter)) throw new Error(`namespace ${nsp.name} has no sharded adapter`);
    return a;
  };
  return {
    restore: (nsp, pid, offset, userId, allowed) =>
      restore({ adapter: adapterOf(nsp), sessions, redis, metrics, limits }, pid, offset, userId, allowed),
    async joined(socket, rooms) {
      const floors = await adapterOf(socket.nsp).whenLive(rooms);
      const pid = pidOf(socket);
      if (pid) await sessions.join(pid, floors);
    },
    async left(socket, rooms) {
      const pid = pidOf(socket);
      if (pid) await sessions.leave(pid, rooms);
    },
    async started(socket, rooms) {
      const floors = await adapterOf(socket.nsp).whenLive([NSP_ROOM, ...rooms]);
      const pid = pidOf(socket);
      if (!pid) return;
      await sessions.create(pid, socket.id, (socket.data.principal as { userId: string }).userId, socket.data, floors);
      metrics.sessionsPersisted.inc();
    },
    async resumed(socket) {
      const pid = pidOf(socket);
      if (pid) await sessions.setData(pid, socket.data);
    },
    async dropped(socket) {
      const pid = pidOf(socket);
      if (pid) await sessions.dropped(pid, socket.data);
    },
    async ended(socket) {
      const pid = pidOf(socket);
      if (pid) await sessions.end(pid);
    },
    async refresh(sockets) {
      await sessions.refresh(sockets.map(pidOf).filter((p): p is string => !!p));
    },
  };
}

/** The single node's recovery: Socket.IO's in-memory sessions, bound to their user. */
export function memoryRecovery(windowMs: number): Recovery {
  const none = async () => undefined;
  return {
    async restore(nsp, pid, offset, userId, allowed) {
      const a = nsp.adapter as unknown;
      if (!(a instanceof LocalAdapter)) return 'no_session';
      return a.restoreFor(pid, offset, userId, allowed, windowMs);
    },
    joined: none,
    left: none,
    started: none,
    resumed: none,
    dropped: none,
    async ended(socket) {
      // Socket.IO keeps no session for a client that left on purpose; forget any older one.
      const pid = pidOf(socket);
      const a = socket.nsp.adapter as unknown as { sessions?: Map<string, unknown> };
      if (pid) a.sessions?.delete(pid);
    },
    refresh: none,
  };
}
