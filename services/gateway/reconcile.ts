import type { Socket } from 'socket.io';
import type { Principal } from '../core/auth/auth';
import { clientRoom } from '../core/redis/keys';
import type { Membership } from '../core/rooms/store';
import type { GatewayContext } from './context';
import { allSockets } from './drain';
import { clientRooms, leaveAndAnnounce, recordJoin } from './rooms';

/** What one pass changed, by kind. */
export interface Reconciled {
  connected: number;
  disconnected: number;
  joined: number;
  left: number;
}

/**
 * Local truth wins after an outage (ARCHITECTURE.md rule 12): writes that failed while Redis was
 * down are not forgotten. What Redis holds for this incarnation (sockets in presence, room
 * memberships) is compared with the sockets and rooms the pod really has, in both directions, and
 * the difference applied through the usual transitions, so each resulting online/offline or
 * user-joined/user-left is announced once (the scripts decide it once). Memberships parked for a
 * dropped connection's grace period, or taken over by another pod, are left to their owners.
 * Every step is idempotent: a pass racing a connect or a leave changes nothing twice.
 *
 * The pod's own indexes can say a socket is recorded when its records are gone: a stale
 * incarnation (paused, reaped, resumed) that had begun a recovery of the same session finishes it
 * after the socket recovered here, overwriting the records, then drops its copy and removes them
 * under its own name. So each pass also reads the records themselves (presence and room
 * membership of a quarter of the connected sockets, rotating over all of them: see verifyCount)
 * and records again what is missing or held by another pod.
 */
export async function reconcile(ctx: GatewayContext): Promise<Reconciled> {
  const out: Reconciled = { connected: 0, disconnected: 0, joined: 0, left: 0 };
  if (ctx.engine.kind !== 'redis' || ctx.draining()) return out;
  const local = new Map<string, Socket>();
  for (const s of allSockets(ctx.io)) if (s.nsp.name !== '/admin' && s.data.principal) local.set(`${s.nsp.name}\n${s.id}`, s);
  await reconcilePresence(ctx, local, out);
  await reconcileRooms(ctx, local, out);
  await verifyRecords(ctx, local, out);
  if (out.connected || out.disconnected || out.joined || out.left)
    ctx.logger.info(out, 'reconciled what Redis holds for this pod with its sockets');
  return out;
}

/** Sockets whose records one pass reads at most (with their rooms): a pass costs at most this many presence reads plus their memberships. */
export const VERIFY_PER_PASS = 1000;
/** Every socket is read at least once every this many passes (until VERIFY_PER_PASS caps a pass)... */
const VERIFY_ROTATION_PASSES = 4;
/** ...and a pod with few sockets reads up to this many per pass (all of them, in small pods). */
const VERIFY_MIN_PER_PASS = 200;

/**
 * How many sockets one pass reads. A share of the pod's sockets rather than a fixed count, so that
 * the cluster's cost follows its sockets, not its pods (ARCHITECTURE.md rule 8): 4,000 sockets on
 * 4 pods cost what they cost on 1 (each pod reads 250 per pass; a fixed 1,000 made each pod read
 * all of its own every pass, 4x the reads of one pod holding them all).
 */
export function verifyCount(sockets: number): number {
  return Math.min(sockets, VERIFY_PER_PASS, Math.max(VERIFY_MIN_PER_PASS, Math.ceil(sockets / VERIFY_ROTATION_PASSES)));
}
const cursors = new WeakMap<GatewayContext, number>();

async function verifyRecords(ctx: GatewayContext, local: Map<string, Socket>, out: Reconciled): Promise<void> {
  const sockets = [...local.values()].filter((s) => s.connected);
  if (!sockets.length) return;
  const start = (cursors.get(ctx) ?? 0) % sockets.length;
  const n = verifyCount(sockets.length);
  cursors.set(ctx, start + n);
  const slice = Array.from({ length: n }, (_, i) => sockets[(start + i) % sockets.length]);
  await Promise.all(
    slice.map(async (s) => {
      const nsp = s.nsp.name;
      const userId = (s.data.principal as Principal).userId;
      if ((await ctx.engine.presence.socketPod(nsp, userId, s.id)) !== ctx.pod && s.connected) {
        await ctx.presence.connected(nsp, userId, s.id);
        out.connected++;
      }
      for (const room of clientRooms(s)) {
        if ((await ctx.engine.rooms.socketPod({ nsp, room, sid: s.id })) === ctx.pod) continue;
        if (!s.connected || !s.rooms.has(clientRoom(room))) continue;
        await recordJoin(ctx, s, room, userId);
        out.joined++;
      }
    }),
  );
}

async function reconcilePresence(ctx: GatewayContext, local: Map<string, Socket>, out: Reconciled): Promise<void> {
  const registered = await ctx.engine.presence.podSockets(ctx.pod);
  const known = new Set(registered.map((r) => `${r.nsp}\n${r.sid}`));
  for (const [k, s] of local) {
    if (known.has(k) || !s.connected) continue;
    await ctx.presence.connected(s.nsp.name, (s.data.principal as Principal).userId, s.id);
    out.connected++;
  }
  for (const r of registered) {
    if (local.has(`${r.nsp}\n${r.sid}`)) continue;
    await ctx.presence.disconnected(r.nsp, r.userId, r.sid, ctx.pod);
    out.disconnected++;
  }
}

async function reconcileRooms(ctx: GatewayContext, local: Map<string, Socket>, out: Reconciled): Promise<void> {
  const rooms = ctx.engine.rooms;
  const recorded = await rooms.podMemberships(ctx.pod);
  const key = (m: Membership) => `${m.nsp}\n${m.room}\n${m.sid}`;
  const have = new Set(recorded.map(key));
  for (const s of local.values()) {
    if (!s.connected) continue;
    for (const room of clientRooms(s)) {
      if (have.has(key({ nsp: s.nsp.name, room, sid: s.id }))) continue;
      await recordJoin(ctx, s, room, (s.data.principal as Principal).userId);
      out.joined++;
    }
  }
  for (const m of recorded) {
    const s = local.get(`${m.nsp}\n${m.sid}`);
    if (s && s.rooms.has(clientRoom(m.room))) continue;
    const at = await rooms.socketPod(m);
    if (at !== ctx.pod) {
      if (at !== null) await rooms.forgetPodMembership(ctx.pod, m); // recovered on another pod
      continue;
    }
    if ((await rooms.parkedUntil(m)) !== null) continue; // in its grace period: the sweep decides
    const userId = await rooms.memberUser(m);
    if (!userId) continue;
    await leaveAndAnnounce(ctx, ctx.io.of(m.nsp), m.sid, m.room, userId);
    out.left++;
  }
}
