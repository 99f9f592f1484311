import type { Namespace, Server, Socket } from 'socket.io';
import { requireMethods } from './socketio-internals';

type Packet = { type?: number; id?: number; data?: unknown[] };
type BroadcastOpts = { rooms: Set<string>; except?: Set<string>; flags?: { volatile?: boolean } };
type Session = { sid: string; rooms: string[]; missedPackets: unknown[][] };
type PatchableAdapter = {
  sids: Map<string, Set<string>>;
  apply(opts: BroadcastOpts, cb: (socket: Socket) => void): void;
  _encode(packet: Packet, opts: unknown): unknown;
  restoreSession(pid: string, offset: string): Promise<Session | null | undefined>;
  __recoveryGap?: true;
};
type PatchableNamespace = {
  _createSocket(client: unknown, auth: Record<string, unknown>): Promise<Socket>;
  _doConnect(socket: Socket, fn: unknown): void;
  _remove(socket: Socket): void;
};

/** A broadcast this pod delivered, with its recovery offset, kept while a session restore is in flight. */
interface Delivered {
  seq: number;
  offset: string;
  data: unknown[];
  opts: BroadcastOpts;
}

const DEDUP_MS = 30000;
const RING_MAX = 50000;

/** Whether a broadcast with `opts` reaches a socket in `rooms` (Socket.IO's rule for missed packets). */
function reaches(rooms: Iterable<string>, opts: BroadcastOpts): boolean {
  const list = [...rooms];
  const included = opts.rooms.size === 0 || list.some((r) => opts.rooms.has(r));
  return included && !list.some((r) => opts.except?.has(r));
}

/**
 * Closes two gaps of Socket.IO connection state recovery that lose room messages when clients
 * reconnect while messages flow (seen by the e2e suite when a gateway is killed under load,
 * test/e2e/kill.test.ts):
 *
 * 1. Socket.IO restores a session (rooms, missed packets) before it runs the namespace
 *    middlewares (run for recovered sockets too here: `skipMiddlewares: false` checks the token
 *    again), but adapters deliver broadcasts only to sockets of `nsp.sockets`, which a socket
 *    enters once its (asynchronous) middlewares are done. A broadcast in between is lost.
 *    Fix: broadcasts that carry a recovery offset also go to recovered sockets still in their
 *    handshake; the client buffers them until its CONNECT, after the missed packets.
 * 2. The restore reads the adapter stream up to its end at one moment, while this pod keeps
 *    delivering broadcasts (from its stream reader, or its own after their XADD) until the socket
 *    exists: an entry added after that read but delivered here before the socket joined its rooms
 *    is in neither. Fix: broadcasts delivered while a restore is in flight are remembered, and
 *    those the restore did not include are sent right after the missed packets; an entry the
 *    restore did include is not sent again when the stream reader delivers it later.
 */
export function closeRecoveryGap(io: Server): void {
  const patch = (nsp: Namespace) => {
    const adapter = nsp.adapter as unknown as PatchableAdapter;
    const ns = nsp as unknown as PatchableNamespace;
    if (adapter.__recoveryGap) return;
    requireMethods(adapter, 'the adapter', ['apply', '_encode', 'restoreSession']);
    requireMethods(ns, 'Namespace', ['_createSocket', '_doConnect', '_remove']);
    adapter.__recoveryGap = true;

    let seq = 0;
    const ring: Delivered[] = [];
    /** pid -> seq when its restore started (until its socket exists). */
    const restoring = new Map<string, number>();
    /** sid -> offsets it got among its missed packets. */
    const restored = new Map<string, Set<string>>();
    /** Recovered sockets between their restore and their connection (or refusal). */
    const handshaking = new Map<string, Socket>();
    /** sid -> offsets already sent to it, not to send again, with when the entry was made. */
    const dedup = new Map<string, { offsets: Set<string>; at: number }>();

    const prune = () => {
      const oldest = Math.min(Infinity, ...restoring.values());
      let drop = 0;
      while (drop < ring.length && (ring[drop].seq <= oldest || ring.length - drop > RING_MAX)) drop++;
      if (!restoring.size) drop = ring.length;
      if (drop) ring.splice(0, drop);
      const now = Date.now();
      for (const [sid, d] of dedup) {
        if (d.at > now - DEDUP_MS) break;
        dedup.delete(sid);
      }
    };
    const sentAlready = (sid: string, offset: string): boolean => {
      const d = dedup.get(sid);
      if (!d?.offsets.delete(offset)) return false;
      if (!d.offsets.size) dedup.delete(sid);
      return true;
    };

    const restore = adapter.restoreSession.bind(adapter);
    adapter.restoreSession = async (pid, offset) => {
      restoring.set(pid, seq);
      const session = await restore(pid, offset);
      if (session) restored.set(session.sid, new Set(session.missedPackets.map((p) => String(p[p.length - 1]))));
      return session;
    };

    const create = ns._createSocket.bind(ns);
    ns._createSocket = async (client, auth) => {
      const pid = typeof auth?.pid === 'string' ? auth.pid : undefined;
      try {
        const socket = await create(client, auth);
        const missed = restored.get(socket.id);
        restored.delete(socket.id);
        if (socket.recovered && missed && pid !== undefined && restoring.has(pid)) {
          const since = restoring.get(pid)!;
          const rooms = adapter.sids.get(socket.id) ?? new Set<string>();
          for (const d of ring) {
            if (d.seq <= since || missed.has(d.offset) || !reaches(rooms, d.opts)) continue;
            (socket as unknown as { packet(p: Packet): void }).packet({ type: 2, data: d.data });
            missed.add(d.offset);
          }
          dedup.delete(socket.id);
          dedup.set(socket.id, { offsets: missed, at: Date.now() });
          handshaking.set(socket.id, socket);
        }
        return socket;
      } finally {
        if (pid !== undefined) restoring.delete(pid);
        prune();
      }
    };
    const doConnect = ns._doConnect.bind(ns);
    ns._doConnect = (socket, fn) => {
      handshaking.delete(socket.id);
      doConnect(socket, fn);
    };
    const remove = ns._remove.bind(ns);
    ns._remove = (socket) => {
      handshaking.delete(socket.id);
      remove(socket);
    };

    // The in-memory adapter encodes a broadcast right before it calls apply(): remember which one.
    let current: Packet | undefined;
    const encode = adapter._encode.bind(adapter);
    adapter._encode = (packet, opts) => {
      current = packet;
      return encode(packet, opts);
    };
    const apply = adapter.apply.bind(adapter);
    adapter.apply = (opts, cb) => {
      const packet = current;
      current = undefined;
      // Socket.IO appends the recovery offset to the event packets it keeps for recovery.
      const withOffset =
        packet?.type === 2 && packet.id === undefined && !opts.flags?.volatile && Array.isArray(packet.data) && packet.data.length > 1;
      if (!withOffset) return apply(opts, cb);
      const data = packet!.data!;
      const offset = String(data[data.length - 1]);
      if (!dedup.size) apply(opts, cb);
      else apply(opts, (socket) => !sentAlready(socket.id, offset) && cb(socket));
      if (restoring.size) ring.push({ seq: ++seq, offset, data, opts });
      for (const s of handshaking.values()) {
        if (!sentAlready(s.id, offset) && reaches(adapter.sids.get(s.id) ?? [], opts)) cb(s);
      }
    };
  };
  for (const nsp of (io as unknown as { _nsps: Map<string, Namespace> })._nsps.values()) patch(nsp);
  io.on('new_namespace', patch);
}
