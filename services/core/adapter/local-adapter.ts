/**
 * The single node's adapter: Socket.IO's own session-aware in-memory adapter, with two changes.
 * Broadcasts also reach recovered sockets still in their handshake (their client buffers them
 * until its CONNECT; the middlewares run asynchronously, and a broadcast in between was lost), and
 * a restore is bound to its user and re-checks the session's rooms (recovery.ts).
 */
import type { Namespace, Socket } from 'socket.io';
import { SessionAwareAdapter } from 'socket.io-adapter';
import type { Restored } from './restore';

type Room = string;
interface BroadcastOptions {
  rooms: Set<Room>;
  except?: Set<Room>;
}
interface StoredPacket {
  id: string;
  opts: BroadcastOptions;
  data: unknown[];
  emittedAt: number;
}
interface MemorySession {
  sid: string;
  pid: string;
  rooms: Room[];
  data: { principal?: { userId?: string } };
  disconnectedAt: number;
}

export class LocalAdapter extends SessionAwareAdapter {
  constructor(nsp: Namespace) {
    super(nsp);
  }

  /** Restores `pid` for `userId` from `offset`, keeping only the rooms `allowed` still allows. */
  restoreFor(
    pid: string,
    offset: string,
    userId: string,
    allowed: (room: Room) => boolean,
    windowMs: number,
  ): Restored | 'no_session' | 'other_user' | 'expired' {
    const own = this as unknown as { sessions: Map<string, MemorySession>; packets: StoredPacket[] };
    const session = own.sessions.get(pid);
    if (!session) return 'no_session';
    if (session.data?.principal?.userId !== userId) return 'other_user';
    const index = own.packets.findIndex((p) => p.id === offset);
    if (session.disconnectedAt + windowMs < Date.now() || index < 0) return 'expired';
    const rooms = session.rooms.filter((r) => r === session.sid || allowed(r));
    const revoked = session.rooms.filter((r) => r !== session.sid && !allowed(r));
    const missedPackets: unknown[][] = [];
    for (const p of own.packets.slice(index + 1)) {
      const included = p.opts.rooms.size === 0 || rooms.some((r) => p.opts.rooms.has(r));
      if (included && !rooms.some((r) => p.opts.except?.has(r))) missedPackets.push(p.data);
    }
    return {
      session: { sid: session.sid, pid, rooms, data: session.data, missedPackets },
      revoked,
      buffer: { rooms: new Set(), readTo: new Map(), frames: [] },
      read: missedPackets.length,
    };
  }
}

// Socket.IO calls apply() for every broadcast, fetchSockets, disconnectSockets and socketsJoin/Leave.
(LocalAdapter.prototype as unknown as { apply: unknown }).apply = function (
  this: LocalAdapter,
  opts: BroadcastOptions,
  cb: (s: Socket) => void,
) {
  const own = this as unknown as { rooms: Map<Room, Set<string>>; sids: Map<string, Set<Room>>; nsp: Namespace };
  const pre = (own.nsp as unknown as { _preConnectSockets?: Map<string, Socket> })._preConnectSockets;
  const excluded = new Set<string>();
  for (const r of opts.except ?? []) for (const sid of own.rooms.get(r) ?? []) excluded.add(sid);
  const seen = new Set<string>();
  const visit = (sid: string) => {
    if (excluded.has(sid) || seen.has(sid)) return;
    seen.add(sid);
    const socket = own.nsp.sockets.get(sid) ?? pre?.get(sid);
    if (socket && (socket.connected || socket.recovered)) cb(socket);
  };
  if (!opts.rooms.size) for (const sid of own.sids.keys()) visit(sid);
  else for (const r of opts.rooms) for (const sid of own.rooms.get(r) ?? []) visit(sid);
};
