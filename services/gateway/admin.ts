import { Cluster } from 'ioredis';
import type { Namespace } from 'socket.io';
import { askAll, LocalStats, RPC } from '../core/cluster-rpc';
import { GatewayError } from '../core/platform/errors';
import { clientRoom, isReservedRoom, isValidUserId, userRoom } from '../core/redis/keys';
import { adminBroadcastSchema, adminDisconnectSchema } from '../core/schemas';
import type { GatewayContext } from './context';
import { Handler, parse } from './events';
import { clientRooms } from './rooms';

// Above the adapter's own 5 s request timeout: a frozen pod then costs 5 s, but the answers of
// the healthy pods (handed over by the adapter when it gives up) are kept.
const RPC_TIMEOUT_MS = 6000;

/** This pod's connections, distinct users and client rooms over every namespace. */
export function localStats(ctx: GatewayContext): LocalStats {
  const users = new Set<string>();
  const rooms = new Set<string>();
  let connections = 0;
  for (const nsp of ctx.io._nsps.values()) {
    for (const s of nsp.sockets.values()) {
      connections++;
      const uid = (s.data as { principal?: { userId: string } }).principal?.userId;
      if (uid) users.add(uid);
      for (const r of clientRooms(s)) rooms.add(`${nsp.name}\n${r}`);
    }
  }
  return { id: ctx.pod, connections, users: [...users], rooms: [...rooms] };
}

/** Disconnects every local socket of a user in every namespace; returns how many. */
export function disconnectLocalUser(ctx: GatewayContext, userId: string): number {
  if (!isValidUserId(userId)) return 0;
  let n = 0;
  for (const nsp of ctx.io._nsps.values()) {
    const ids = nsp.adapter.rooms.get(userRoom(userId));
    if (!ids) continue;
    for (const sid of [...ids]) {
      const s = nsp.sockets.get(sid);
      if (s) {
        s.disconnect(true);
        n++;
      }
    }
  }
  return n;
}

/** Answers the cluster requests the admin events send to every pod. */
export function answerClusterRequests(ctx: GatewayContext): void {
  ctx.io.on(RPC.stats as never, ((_a: unknown, cb: (s: LocalStats) => void) => cb?.(localStats(ctx))) as never);
  ctx.io.on(RPC.disconnectUser as never, ((userId: string, cb: (n: number) => void) => cb?.(disconnectLocalUser(ctx, userId))) as never);
}

function resolveNamespace(ctx: GatewayContext, name: string): Namespace {
  if (name === '/' || name === '/admin' || ctx.cfg.workspacePattern.test(name)) return ctx.io.of(name);
  throw new GatewayError('not_found', `namespace "${name}" does not exist`);
}

/**
 * Waits (bounded) until the adapter of a namespace this pod just created is subscribed to its
 * channels. Before that, serverCount() does not count this pod and the other pods' answers are
 * lost, so a broadcast with acks would finish early without them.
 */
async function adapterSubscribed(ctx: GatewayContext, nsp: Namespace, timeoutMs = 2000): Promise<void> {
  const redis = ctx.engine.redis;
  const uid = (nsp.adapter as unknown as { uid?: string }).uid;
  if (!redis || !uid) return;
  const channel = `${ctx.engine.keys.channelPrefix()}#${nsp.name}#${uid}#`;
  const nodes = redis instanceof Cluster ? redis.nodes() : [redis];
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const counts = await Promise.all(nodes.map((n) => n.pubsub('NUMSUB', channel).catch(() => [channel, 0])));
    if (counts.some((r) => Number((r as unknown[])[1]) > 0)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Broadcast with acknowledgements across all pods: resolves with the answers and how many did not answer in time. */
export function broadcastWithAck(
  nsp: Namespace,
  room: string | undefined,
  event: string,
  data: unknown,
  timeoutMs: number,
): Promise<{ acked: number; missing: number; responses: unknown[] }> {
  const adapter = nsp.adapter as unknown as {
    broadcastWithAck(p: object, o: object, count: (n: number) => void, ack: (r: unknown) => void): void;
    serverCount(): Promise<number>;
  };
  return new Promise((resolve) => {
    const responses: unknown[] = [];
    let expectedClients = 0;
    let expectedServers = -1;
    let servers = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ acked: responses.length, missing: Math.max(0, expectedClients - responses.length), responses });
    };
    const check = () => {
      if (expectedServers >= 0 && servers >= expectedServers && responses.length >= expectedClients) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    adapter.broadcastWithAck(
      { type: 2, data: [event, data] },
      { rooms: new Set(room ? [clientRoom(room)] : []), except: new Set(), flags: { timeout: timeoutMs } },
      (n) => {
        expectedClients += n;
        servers++;
        check();
      },
      (r) => {
        responses.push(r);
        check();
      },
    );
    Promise.resolve(adapter.serverCount()).then(
      (n) => {
        expectedServers = n;
        check();
      },
      () => undefined,
    );
  });
}

/** The events of the `/admin` namespace. */
export const adminHandlers: Record<string, Handler> = {
  async 'admin:stats'(ctx) {
    ctx.requireAvailable();
    const [heartbeats, remote] = await Promise.all([
      ctx.engine.pods.pods(),
      askAll<LocalStats | null>(ctx.io.of('/'), RPC.stats, null, RPC_TIMEOUT_MS),
    ]);
    const all = [localStats(ctx), ...remote.filter((s): s is LocalStats => !!s)];
    const byId = new Map(all.map((s) => [s.id, s]));
    const stale = Date.now() - ctx.cfg.heartbeatIntervalMs * 3;
    const pods = heartbeats
      .filter((h) => h.lastHeartbeat >= stale || byId.has(h.id))
      .map((h) => ({ id: h.id, connections: byId.get(h.id)?.connections ?? h.connections, lastHeartbeat: h.lastHeartbeat }));
    for (const s of all)
      if (!pods.some((p) => p.id === s.id)) pods.push({ id: s.id, connections: s.connections, lastHeartbeat: Date.now() });
    // Pods are shown by name (POD_NAME); what they register under is their incarnation.
    const names = new Map(heartbeats.map((h) => [h.id, h.name ?? h.id]));
    for (const p of pods) p.id = names.get(p.id) ?? p.id.replace(/\.[0-9a-z]+$/, '');
    pods.sort((a, b) => a.id.localeCompare(b.id));
    const users = new Set(all.flatMap((s) => s.users));
    const rooms = new Set(all.flatMap((s) => s.rooms));
    return { pods, connections: all.reduce((n, s) => n + s.connections, 0), onlineUsers: users.size, rooms: rooms.size };
  },

  async 'admin:broadcast'(ctx, _socket, raw) {
    const b = parse(adminBroadcastSchema, raw);
    if (b.room && isReservedRoom(b.room)) throw new GatewayError('forbidden', `room "${b.room}" is reserved`);
    ctx.requireAvailable();
    const existed = ctx.io._nsps.has(b.namespace ?? '/');
    const nsp = resolveNamespace(ctx, b.namespace ?? '/');
    if (!existed) await adapterSubscribed(ctx, nsp);
    return broadcastWithAck(nsp, b.room, b.event, b.data, b.timeoutMs ?? 5000);
  },

  async 'admin:disconnect-user'(ctx, _socket, raw) {
    const { userId } = parse(adminDisconnectSchema, raw);
    ctx.requireAvailable();
    const remote = await askAll<number>(ctx.io.of('/'), RPC.disconnectUser, userId, RPC_TIMEOUT_MS);
    const local = disconnectLocalUser(ctx, userId);
    return { disconnected: local + remote.reduce((a, b) => a + (Number(b) || 0), 0) };
  },
};
