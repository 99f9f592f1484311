import type { Server, Socket } from 'socket.io';
import type { Principal } from '../core/auth/auth';
import { closeConnection } from './dispatcher';
import { clientRooms } from './rooms';
import type { Candidate } from './shed-choice';

/** Every socket of the pod, all namespaces. */
export function allSockets(io: Server): Socket[] {
  return [...io._nsps.values()].flatMap((nsp) => [...nsp.sockets.values()]);
}

/** Closes every connection of the pod: its clients reconnect (elsewhere) and recover. */
export function closeAll(io: Server): void {
  for (const s of allSockets(io)) closeConnection(s);
}

/**
 * The pod's Engine.IO connections as candidates for a move (shed-choice.ts), each keyed by one of
 * its sockets (closing it closes them all): its user, its rooms in every namespace, since when.
 * `skip` leaves connections out (those that owe answers).
 */
export function connectionCandidates(io: Server, skip: (s: Socket) => boolean = () => false): Array<Candidate<Socket>> {
  const byConn = new Map<object, Candidate<Socket>>();
  for (const s of allSockets(io)) {
    const rooms = clientRooms(s).map((r) => `${s.nsp.name} ${r}`);
    const c = byConn.get(s.client);
    if (c) {
      c.sockets++;
      c.rooms.push(...rooms);
      continue;
    }
    const p = s.data?.principal as Principal | undefined;
    byConn.set(s.client, { key: s, user: p?.userId ?? s.id, rooms, since: s.handshake.issued, sockets: 1 });
  }
  return [...byConn.values()].filter((c) => !skip(c.key));
}
