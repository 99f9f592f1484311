import fs from 'fs';
import path from 'path';
import { io } from 'socket.io-client';
import { Cluster, ROOT, startCluster, waitReady } from '../e2e/cluster';
import { sleep } from '../e2e/clients';
import { ClientRecord, soakClient, SoakClient, TransportMix } from './client';
import { buildSnapshot, Snapshot } from './build';
import { FaultRecord, runPlan } from './faults';
import { planFaults } from './plan';
import { criterion, grid, info, Row, table } from './report';
import { derive, intIn, randomSeed, sample } from './rng';
import { sampleRss } from './rss';
import { askWithin, startChurn, startLoad } from './traffic';
import {
  explainUser,
  FaultWindow,
  ghostCause,
  InboxRead,
  offlineStory,
  inboxVerdict,
  membershipVerdict,
  MembershipVerdict,
  presenceVerdict,
  PresenceVerdict,
  roomVerdict,
} from './verdicts';

// The chaos soak of issue #13 (`make soak`; test/e2e/README.md, "Chaos soak"): the local cluster
// of `make up` (3 gateways, 2 workers, Redis with AOF, HAProxy) on free loopback ports, 150+
// clients, random faults every 15-30 s for SOAK_SECONDS, a ledger of everything acknowledged, and
// the verdicts once the cluster has settled. Results in .run/soak/<timestamp>-<seed>/.

const env = process.env;
function num(name: string, def: number): number {
  const v = env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v} is not a non-negative number`);
  return n;
}

const SECONDS = num('SOAK_SECONDS', 600);
const SEED = env.SOAK_SEED ? num('SOAK_SEED', 0) >>> 0 : randomSeed();
const RESIDENTS = num('SOAK_CLIENTS', 150);
const CHURN_USERS = num('SOAK_CHURN_USERS', 30);
const AWAY_USERS = num('SOAK_AWAY_USERS', 10);
const ROOMS = num('SOAK_ROOMS', 15);
const ROOM_RATE = num('SOAK_ROOM_RATE', 20);
const DIRECT_RATE = num('SOAK_DIRECT_RATE', 20);
const PUBLISH_RATE = num('SOAK_PUBLISH_RATE', 10);
// 3 s: a Redis outage of the soak (1.5-4 s down, plus reconnects) stays under the reap bound (3
// heartbeats), so pods are not reaped for it and what a disconnect during the outage leaves behind shows.
const HEARTBEAT_MS = num('SOAK_HEARTBEAT_MS', 3000);
const GRACE_MS = num('SOAK_GRACE_MS', 1000);
const PAUSE_MS = num('SOAK_PAUSE_MS', 20000);
const VISIBILITY_MS = 5000;
const SWEEP_MS = 500;
/** docs: a dead pod's users are offline within 3 heartbeat intervals + the grace period, plus one sweep. */
const BOUND_MS = 3 * HEARTBEAT_MS + GRACE_MS + SWEEP_MS;
const SETTLE_MS = num('SOAK_SETTLE_MS', Math.max(20000, 2 * BOUND_MS + VISIBILITY_MS + 5000));
const RECHECK_MS = Math.max(10000, 2 * BOUND_MS);
const ACK_TIMEOUT_MS = 30000;
const RECOVERY_WINDOW_MS = 120000;

const GATEWAY_ENV = { HEARTBEAT_INTERVAL_MS: HEARTBEAT_MS, PRESENCE_GRACE_MS: GRACE_MS, SHUTDOWN_DELAY_MS: 1500, DRAIN_TIMEOUT_MS: 5000 };
const WORKER_ENV = { HEARTBEAT_INTERVAL_MS: HEARTBEAT_MS, PRESENCE_GRACE_MS: GRACE_MS, WORKER_VISIBILITY_TIMEOUT_MS: VISIBILITY_MS };

const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
const OUT = path.join(ROOT, '.run/soak', `${stamp}-${SEED}`);

jest.setTimeout((SECONDS + 1500) * 1000);

let logFile = '';
function log(line: string): void {
  const t = new Date().toISOString().slice(11, 19);
  const text = `[soak ${t}] ${line}\n`;
  process.stdout.write(text);
  if (logFile) fs.appendFileSync(logFile, text);
}

/** Small files indented; the big ones (ledger, lost, timelines, clients) one line, to keep a run folder at a few MB. */
const writeJson = (name: string, data: unknown, compact = false) =>
  fs.writeFileSync(path.join(OUT, name), compact ? JSON.stringify(data) : JSON.stringify(data, null, 2));

/** Reads a user's whole inbox back (`inboxSince: '0-0'`) from `queued-messages`, until `more: false`. */
async function readInbox(c: Cluster, userId: string): Promise<InboxRead> {
  const out: InboxRead = { ids: [], pids: [], complete: false };
  const s = io(c.baseUrl, {
    auth: { token: await c.token(userId), inboxSince: '0-0' },
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: 10000,
  });
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 30000);
    s.on('queued-messages', (b: { messages: Array<{ id: string; publishId?: string }>; more: boolean }) => {
      for (const m of b.messages ?? []) {
        if (m.publishId) out.pids.push(m.publishId);
        else out.ids.push(m.id);
      }
      if (!b.more) {
        out.complete = true;
        clearTimeout(t);
        resolve();
      }
    });
    s.on('connect_error', () => {
      clearTimeout(t);
      resolve();
    });
  });
  s.disconnect();
  return out;
}

/** Does a client judged wrong still have a working connection, and does it get its own room message back? */
async function probe(cl: SoakClient): Promise<{ answers: boolean; selfDelivered?: boolean }> {
  const room = cl.rec.desiredRooms[0];
  if (!room) return { answers: (await askWithin(cl.socket, 5000, 'get-presence', [cl.rec.userId])).ok };
  const a = await askWithin(cl.socket, 5000, 'message', { roomId: room, text: 'probe', data: { probe: true } });
  if (!a.ok) return { answers: false };
  const end = Date.now() + 3000;
  while (Date.now() < end && !cl.rec.deliveries.some((d) => d.key === a.id)) await sleep(50);
  return { answers: true, selfDelivered: cl.rec.deliveries.some((d) => d.key === a.id) };
}

export interface Probe {
  userId: string;
  client?: string;
  connected: boolean;
  answers?: boolean;
  selfDelivered?: boolean;
}

interface Check {
  at: number;
  presence: PresenceVerdict;
  membership: MembershipVerdict;
  stats?: unknown;
}

async function checkState(c: Cluster, observer: SoakClient, users: string[], rooms: string[], clients: SoakClient[]): Promise<Check> {
  const at = Date.now();
  const live = clients.filter((cl) => cl.rec.closedAt === undefined);
  const connected = new Set(live.filter((cl) => cl.socket.connected).map((cl) => cl.rec.userId));
  // Users whose truth changed within the bound before the check are not judged.
  const recent = new Set<string>();
  for (const cl of clients) {
    const last = Math.max(cl.rec.closedAt ?? 0, ...cl.rec.connects.map((k) => k.at), ...cl.rec.disconnects.map((d) => d.at));
    if (last > at - BOUND_MS - 1000) recent.add(cl.rec.userId);
  }
  const ask = async (event: string, arg: unknown) => {
    for (let i = 0; ; i++) {
      const a = await askWithin(observer.socket, 15000, event, arg);
      if (a.ok || i >= 5) return a;
      await sleep(1000);
    }
  };
  const p = await ask('get-presence', users);
  const status = new Map<string, string>(((p.users ?? []) as Array<{ userId: string; status: string }>).map((u) => [u.userId, u.status]));
  const listed = new Map<string, Array<{ userId: string; sockets: number }> | undefined>();
  for (const r of rooms) {
    const m = await ask('get-room-members', r);
    listed.set(r, m.ok ? (m.members as Array<{ userId: string; sockets: number }>) : undefined);
  }
  const truth = new Map<string, Map<string, number>>(rooms.map((r) => [r, new Map()]));
  for (const cl of live) {
    if (!cl.socket.connected) continue;
    for (const j of cl.rec.joins) {
      if (j.sid !== cl.socket.id) continue;
      const m = truth.get(j.room);
      if (m) m.set(cl.rec.userId, (m.get(cl.rec.userId) ?? 0) + 1);
    }
  }
  // Joins are recorded once per room and session, so the counts above are sockets per user.
  let stats: unknown;
  try {
    const admin = io(`${c.baseUrl}/admin`, {
      auth: { token: await c.token('soak-admin', { roles: ['admin'] }) },
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
    });
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 10000);
      admin.on('connect', async () => {
        const s = await askWithin(admin, 10000, 'admin:stats');
        stats = s.ok ? { pods: s.pods, connections: s.connections, onlineUsers: s.onlineUsers, rooms: s.rooms } : s.error;
        clearTimeout(t);
        resolve();
      });
      admin.on('connect_error', () => resolve());
    });
    admin.disconnect();
  } catch {
    /* the stats are information only */
  }
  return {
    at,
    presence: p.ok
      ? presenceVerdict(users, status, connected, recent)
      : { checked: 0, ghosts: [], wrongOffline: [], ambiguous: [], unknown: users },
    membership: membershipVerdict(listed, truth, recent),
    stats,
  };
}

async function runSoak(): Promise<{ failures: string[] }> {
  fs.mkdirSync(OUT, { recursive: true });
  logFile = path.join(OUT, 'harness.log');
  const t0 = Date.now();
  log(
    `seed ${SEED} (replay: SOAK_SEED=${SEED} SOAK_SECONDS=${SECONDS} make soak), ${SECONDS} s of load, results in ${path.relative(ROOT, OUT)}/`,
  );
  log(
    `${RESIDENTS} resident clients, ${CHURN_USERS} users coming and going, ${AWAY_USERS} away, ${ROOMS} rooms; ` +
      `${ROOM_RATE} room messages/s, ${DIRECT_RATE} direct messages/s, ${PUBLISH_RATE} publishes/s; ` +
      `heartbeat ${HEARTBEAT_MS} ms, grace ${GRACE_MS} ms (bound ${BOUND_MS} ms), settle ${SETTLE_MS} ms`,
  );
  const snapshot: Snapshot = buildSnapshot(env.SOAK_REF || undefined);
  const snap = snapshot.dir;
  const build = { source: snapshot.source, commit: snapshot.commit, compileMs: snapshot.compileMs, changedInWorkingTree: snapshot.changed };
  log(`services compiled from ${snapshot.source} in ${(snapshot.compileMs / 1000).toFixed(1)} s into ${snap}`);
  if (snapshot.changed.length)
    log(
      `note: ${snapshot.changed.length} files under services/ or scripts/ differ from HEAD ${snapshot.commit.slice(0, 10)}: the run tests them as they are now`,
    );

  const plan = planFaults({
    seed: SEED,
    durationMs: SECONDS * 1000,
    gateways: ['gateway-1', 'gateway-2', 'gateway-3'],
    workers: ['worker-1', 'worker-2'],
    pauseMs: PAUSE_MS,
  });
  writeJson('plan.json', plan);
  log(`fault plan (${plan.length}): ${plan.map((f) => `+${Math.round(f.atMs / 1000)}s ${f.type} ${f.target}`).join(', ')}`);

  let cluster: Cluster | undefined;
  const all: SoakClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  let rss: ReturnType<typeof sampleRss> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: killing the cluster (logs stay in ${cluster?.runDir ?? '?'})`);
    process.exit(130); // cluster.ts kills every process it started on exit
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    cluster = await startCluster({
      name: `soak-${SEED}`,
      gateways: 3,
      workers: 2,
      gatewayEnv: GATEWAY_ENV,
      workerEnv: WORKER_ENV,
      logsDir: path.join(OUT, 'logs'),
      appRoot: snap,
    });
    const c = cluster;
    log(`cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s at ${c.baseUrl} (run folder ${c.runDir})`);
    rss = sampleRss(path.join(OUT, 'rss.csv'), () => c.pids(), 5000, t0);

    // ------------------------------------------------------------------ clients
    const rooms = Array.from({ length: ROOMS }, (_, i) => `room-${String(i + 1).padStart(2, '0')}`);
    const rPlace = derive(SEED, 'placement');
    const mix = (i: number): TransportMix => (i % 4 === 0 ? 'polling' : i % 4 === 1 ? 'websocket' : 'both');
    const pad = (i: number, n: number) => String(i + 1).padStart(n, '0');
    const residents: SoakClient[] = [];
    const churnFirst: SoakClient[] = [];
    const away: SoakClient[] = [];
    const add = (cl: SoakClient) => (all.push(cl), cl);
    for (let i = 0; i < RESIDENTS; i++)
      residents.push(
        add(
          soakClient(c, {
            label: `r${pad(i, 3)}`,
            userId: `r${pad(i, 3)}`,
            role: 'resident',
            transport: mix(i),
            rooms: sample(rPlace, rooms, 2),
          }),
        ),
      );
    for (let i = 0; i < CHURN_USERS; i++)
      churnFirst.push(
        add(
          soakClient(c, {
            label: `c${pad(i, 2)}#0`,
            userId: `c${pad(i, 2)}`,
            role: 'churn',
            transport: mix(i + 2),
            rooms: sample(rPlace, rooms, intIn(rPlace, 1, 2)),
          }),
        ),
      );
    for (let i = 0; i < AWAY_USERS; i++)
      away.push(add(soakClient(c, { label: `a${pad(i, 2)}`, userId: `a${pad(i, 2)}`, role: 'absent', transport: 'websocket', rooms: [] })));
    const observer = add(soakClient(c, { label: 'observer', userId: 'observer', role: 'observer', transport: 'websocket', rooms: [] }));
    const users = [...new Set(all.map((cl) => cl.rec.userId))];
    const targets = users.filter((u) => u !== 'observer');
    const tConnect = Date.now();
    const deadline = Date.now() + 120000;
    while (!all.every((cl) => cl.settled()) && Date.now() < deadline) await sleep(250);
    const unsettled = all.filter((cl) => !cl.settled());
    if (unsettled.length)
      throw new Error(
        `${unsettled.length} clients did not connect and join their rooms within 120 s: ${unsettled.slice(0, 10).map((cl) => cl.rec.label)}`,
      );
    log(`${all.length} clients connected and in their rooms in ${((Date.now() - tConnect) / 1000).toFixed(1)} s`);
    for (const a of away) a.close();

    // ------------------------------------------------------------------ load and faults
    const loadStart = Date.now();
    const loadEnd = loadStart + SECONDS * 1000;
    const load = startLoad(
      c,
      {
        seed: SEED,
        rooms,
        roomRate: ROOM_RATE,
        directRate: DIRECT_RATE,
        publishRate: PUBLISH_RATE,
        ackTimeoutMs: ACK_TIMEOUT_MS,
        maxInflight: 400,
      },
      residents,
      targets,
    );
    const churn = startChurn({ seed: SEED, rooms, onlineMs: [8000, 40000], offlineMs: [5000, 30000] }, churnFirst, (userId, rs, visit) =>
      add(soakClient(c, { label: `${userId}#${visit}`, userId, role: 'churn', transport: mix(Number(userId.slice(1)) + 1), rooms: rs })),
    );
    const faultLog = path.join(OUT, 'faults.jsonl');
    fs.writeFileSync(faultLog, '');
    const faults = runPlan(c, plan, loadStart, loadEnd, log, (r) => fs.appendFileSync(faultLog, JSON.stringify(r) + '\n'));
    timers.push(
      setInterval(() => {
        const live = all.filter((cl) => cl.rec.closedAt === undefined);
        const cur = faults.current();
        log(
          `+${Math.round((Date.now() - loadStart) / 1000)}s connected ${live.filter((cl) => cl.socket.connected).length}/${live.length}` +
            ` | acked: room ${load.ledger.room.filter((s) => s.kind === 'msg').length}, room publish ${load.ledger.room.filter((s) => s.kind === 'pub').length},` +
            ` direct ${load.ledger.directs.length}, user publish ${load.ledger.notices.length}` +
            ` | failed ${Object.values(load.ledger.failures).reduce((a, b) => a + b, 0)} | in flight ${load.inflight()}` +
            ` | churn visits ${churn.visits()}${cur ? ` | fault #${cur.seq} ${cur.type} ${cur.target}` : ''}`,
        );
      }, 15000),
    );
    while (Date.now() < loadEnd) await sleep(250);
    faults.stop();
    log('load phase over: stopping traffic and churn, waiting for the fault in progress');
    await Promise.all([load.stop(), churn.stop(), faults.done]);
    clearInterval(timers.pop());
    const loadStopped = Date.now();

    // ------------------------------------------------------------------ quiesce and settle
    for (const name of [...c.gateways, ...c.workers, 'redis'])
      if (!c.alive(name)) {
        log(`${name} is not running after the faults: starting it`);
        await c.restart(name).catch((e) => log(`${name}: ${(e as Error).message}`));
      }
    for (const g of c.gateways) await waitReady(c.gatewayUrl(g), true, 30000).catch((e) => log((e as Error).message));
    const quiesceEnd = Date.now() + 120000;
    const open = () => all.filter((cl) => cl.rec.closedAt === undefined);
    while (Date.now() < quiesceEnd && !open().every((cl) => cl.settled())) {
      for (const cl of open()) if (!cl.settled()) cl.kick();
      await sleep(1000);
    }
    const stuck = open().filter((cl) => !cl.settled());
    log(
      `quiet after ${((Date.now() - loadStopped) / 1000).toFixed(1)} s${stuck.length ? `; ${stuck.length} clients not back: ${stuck.map((s) => s.rec.label).join(' ')}` : ''}; settling ${SETTLE_MS} ms`,
    );
    await sleep(SETTLE_MS);

    // ------------------------------------------------------------------ checks
    const check1 = await checkState(c, observer, users, rooms, all);
    for (const cl of all) cl.rec.connectedAtEnd = cl.rec.closedAt === undefined && cl.socket.connected;
    log(
      `check 1: presence ghosts ${check1.presence.ghosts.length}, wrong offline ${check1.presence.wrongOffline.length}; ` +
        `room member ghosts ${check1.membership.ghostUsers.length}, ghost sockets ${check1.membership.ghostSockets.length}, missing ${check1.membership.missing.length}`,
    );
    await sleep(RECHECK_MS);
    const check2 = await checkState(c, observer, users, rooms, all);
    log(
      `check 2 (${RECHECK_MS} ms later): presence ghosts ${check2.presence.ghosts.length}, wrong offline ${check2.presence.wrongOffline.length}`,
    );
    // Users judged wrong while connected: is their connection alive (it answers acks) and does it still get room messages?
    const probes: Probe[] = [];
    const suspects = [...new Set([...check1.presence.wrongOffline, ...check1.membership.missing.map((m) => m.userId)])];
    for (const u of suspects.slice(0, 40)) {
      const cl = all.find((x) => x.rec.userId === u && x.rec.closedAt === undefined && x.socket.connected);
      probes.push(cl ? { userId: u, client: cl.rec.label, connected: true, ...(await probe(cl)) } : { userId: u, connected: false });
    }
    if (probes.length)
      log(
        `probed ${probes.length}: ${probes.filter((p) => p.answers).length} answer acks, ${probes.filter((p) => p.selfDelivered).length} get their own room message back`,
      );

    const records: ClientRecord[] = all.map((cl) => cl.rec);
    const faultWindows: FaultWindow[] = faults.records.map((f) => ({
      seq: f.seq,
      type: f.type,
      target: f.target,
      startedAt: f.startedAt,
      endedAt: f.endedAt,
    }));
    const room = roomVerdict(records, load.ledger.room, faultWindows, RECOVERY_WINDOW_MS);

    // ------------------------------------------------------------------ inboxes
    for (const cl of all) cl.socket.disconnect();
    const recipients = [...new Set([...load.ledger.directs.map((d) => d.to), ...load.ledger.notices.map((n) => n.to)])];
    const reads = new Map<string, InboxRead>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < recipients.length) {
          const u = recipients[next++];
          let r = await readInbox(c, u);
          for (let i = 0; i < 2 && !r.complete; i++) r = await readInbox(c, u);
          reads.set(u, r);
        }
      }),
    );
    const inbox = inboxVerdict(load.ledger.directs, load.ledger.notices, reads, records);
    log(`inboxes of ${recipients.length} users read back`);

    rss.stop();
    const rssSummary = rss.summary();
    rss = undefined;
    await c.down();
    cluster = undefined;
    return report({
      t0,
      loadStart,
      loadStopped,
      build,
      plan,
      faults: faults.records,
      ledger: load.ledger,
      records,
      stuck: stuck.map((s) => s.rec.label),
      room,
      check1,
      check2,
      probes,
      inbox,
      rssSummary,
      faultWindows,
      churnVisits: churn.visits(),
    });
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    for (const t of timers) clearInterval(t);
    rss?.stop();
    for (const cl of all) cl.socket.disconnect();
    if (cluster) await cluster.down().catch((e) => log(`cluster down: ${(e as Error).message}`));
    fs.rmSync(snap, { recursive: true, force: true });
  }
}

interface ReportInput {
  t0: number;
  loadStart: number;
  loadStopped: number;
  build: { source: string; commit: string; compileMs: number; changedInWorkingTree: string[] };
  plan: ReturnType<typeof planFaults>;
  faults: FaultRecord[];
  ledger: ReturnType<typeof startLoad>['ledger'];
  records: ClientRecord[];
  stuck: string[];
  room: ReturnType<typeof roomVerdict>;
  check1: Check;
  check2: Check;
  probes: Probe[];
  inbox: ReturnType<typeof inboxVerdict>;
  rssSummary: ReturnType<NonNullable<ReturnType<typeof sampleRss>>['summary']>;
  faultWindows: FaultWindow[];
  churnVisits: number;
}

const byKey = <T>(list: T[], key: (t: T) => string) =>
  Object.entries(
    list.reduce<Record<string, number>>((m, t) => {
      m[key(t)] = (m[key(t)] ?? 0) + 1;
      return m;
    }, {}),
  ).sort((a, b) => b[1] - a[1]);

function report(r: ReportInput): { failures: string[] } {
  const rel = (t: number) => Math.round((t - r.loadStart) / 100) / 10;
  const { room, check1, check2, inbox } = r;
  const lostMsg = room.lost.filter((l) => l.kind === 'msg');
  const lostPub = room.lost.filter((l) => l.kind === 'pub');
  const explain = (u: string) => {
    const sessions = explainUser(u, r.records, r.faultWindows);
    return { userId: u, cause: ghostCause(sessions), stillThereAtCheck2: false, sessions };
  };
  const ghosts = check1.presence.ghosts.map((u) => ({ ...explain(u), stillThereAtCheck2: check2.presence.ghosts.includes(u) }));
  const wrongOffline = check1.presence.wrongOffline.map((u) => {
    const e = explain(u);
    return { ...e, cause: offlineStory(e.sessions), stillThereAtCheck2: check2.presence.wrongOffline.includes(u) };
  });
  const memberGhosts = [...check1.membership.ghostUsers, ...check1.membership.ghostSockets].map((g) => ({
    ...g,
    cause: ghostCause(explainUser(g.userId, r.records, r.faultWindows)),
  }));

  const pattern = (l: (typeof room.lost)[number]) => {
    const b = l.reconnectBefore;
    const last = b
      ? `after a recovered reconnect (${b.reason}, ${b.from && b.from === b.to ? 'same gateway' : 'other gateway'})`
      : 'no reconnect before';
    return `${l.kind} ${l.when}, ${l.transport}, ${last}`;
  };
  const lostPatterns = byKey(room.lost, pattern);
  const failures: string[] = [];
  const fail = (n: number, what: string) => n > 0 && failures.push(`${n} ${what}`);
  fail(lostMsg.length, 'acked room messages lost');
  fail(lostPub.length, 'accepted room publishes lost');
  fail(inbox.lostDirect.length, 'acked direct messages lost');
  fail(inbox.lostNotices.length, 'accepted user publishes lost');
  fail(check1.presence.ghosts.length, 'presence ghosts');
  fail(check1.presence.wrongOffline.length, 'users shown offline while connected');
  fail(check1.membership.ghostUsers.length, 'room-membership ghosts');
  fail(check1.membership.ghostSockets.length, 'ghost sockets in get-room-members');
  fail(check1.membership.missing.length, 'members missing from get-room-members');
  fail(r.stuck.length, 'clients that never came back (not judged)');
  fail(r.faults.filter((f) => !f.ok).length, 'faults that failed (see faults.jsonl)');
  fail(check1.presence.unknown.length + check1.membership.failedQueries.length, 'presence/membership queries that failed');

  const rows: Row[] = [
    criterion('room messages lost (client connected or recovered)', lostMsg.length),
    info('sent while away, came back recovered without it', lostMsg.filter((l) => l.when === 'recovered-gap').length, 1),
    info('sent while connected (a paused gateway looks connected)', lostMsg.filter((l) => l.when === 'connected').length, 1),
    info('gap before a later delivery, session ended', lostMsg.filter((l) => l.when === 'gap-in-ended-session').length, 1),
    criterion('room publishes lost', lostPub.length),
    info('room deliveries expected / delivered', `${room.expected}/${room.delivered}`),
    info('excused: after the last delivery of a session that ended', room.excused),
    criterion('direct messages lost (not in inbox, never live)', inbox.lostDirect.length),
    criterion('user publishes lost (not in inbox, never live)', inbox.lostNotices.length),
    info('delivered live but missing from the inbox', inbox.liveOnlyDirect + inbox.liveOnlyNotices),
    criterion('presence ghosts (online, no socket connected)', check1.presence.ghosts.length),
    info('still there at the recheck', ghosts.filter((g) => g.stillThereAtCheck2).length, 1),
    criterion('users shown offline while connected', check1.presence.wrongOffline.length),
    criterion('room-membership ghosts (listed, not in the room)', check1.membership.ghostUsers.length),
    criterion('ghost sockets (listed with more sockets than it has)', check1.membership.ghostSockets.length),
    criterion('members missing from get-room-members', check1.membership.missing.length),
    ...(r.probes.length
      ? [
          info(
            'of those, connection answers / gets its own message',
            `${r.probes.filter((p) => p.answers).length}/${r.probes.filter((p) => p.selfDelivered).length} of ${r.probes.length}`,
            1,
          ),
        ]
      : []),
    info('duplicate room messages (same id twice in one session)', room.duplicates.filter((d) => d.kind === 'msg').length),
    info('duplicate room publishes (same publish id twice in one session)', room.duplicates.filter((d) => d.kind === 'pub').length),
    info('duplicate live direct messages / user publishes (at-least-once)', inbox.liveDuplicates),
    info('duplicates in an inbox read', inbox.inboxDuplicates.length),
    info('recovered reconnects', room.recoveredReconnects),
    info('unrecovered reconnects', room.unrecovered.length),
    ...byKey(room.unrecovered, (u) => u.cause).map(([k, n]) => info(k, n, 1)),
    criterion('clients not back at the end (not judged)', r.stuck.length),
  ];
  const acked = {
    roomMessages: room.sentMessages,
    roomPublishes: room.sentPublishes,
    directMessages: inbox.directAcked,
    userPublishes: inbox.noticesAccepted,
  };
  const rssRows = Object.entries(r.rssSummary).map(([n, s]) => [n, s.pids.length, s.firstMb, s.maxMb, s.lastMb]);
  const faultRows = r.faults.map((f) => [
    `#${f.seq} ${f.type}`,
    f.target,
    `+${Math.round(f.plannedAtMs / 1000)}s`,
    `+${rel(f.startedAt)}s`,
    `${((f.endedAt - f.startedAt) / 1000).toFixed(1)}s`,
    f.ok ? 'ok' : 'FAILED',
  ]);
  const text = [
    '',
    table(`chaos soak: seed ${SEED}, ${SECONDS} s, ${failures.length ? 'FAIL' : 'PASS'}  (${path.relative(ROOT, OUT)}/)`, rows),
    '',
    `  acked: ${acked.roomMessages} room messages, ${acked.roomPublishes} room publishes, ${acked.directMessages} direct messages, ${acked.userPublishes} user publishes; ` +
      `failed: ${JSON.stringify(r.ledger.failures)}`,
    '',
    grid(['fault', 'target', 'planned', 'started', 'took', ''], faultRows),
    '',
    grid(['process', 'pids', 'first MB', 'max MB', 'last MB'], rssRows),
    '',
    ...(lostPatterns.length
      ? ['  lost room deliveries by pattern:', ...lostPatterns.slice(0, 8).map(([k, n]) => `    ${String(n).padStart(6)}  ${k}`)]
      : []),
    ...(lostMsg.length
      ? [
          `  lost room messages, examples: ${lostMsg
            .slice(0, 5)
            .map((l) => `${l.client} ${l.key} (${l.when}, ${l.faults.join('/') || 'no fault'})`)
            .join('; ')}`,
        ]
      : []),
    ...(ghosts.length ? [`  presence ghosts: ${ghosts.map((g) => `${g.userId} (${g.cause})`).join('; ')}`] : []),
    ...(wrongOffline.length ? [`  shown offline while connected: ${wrongOffline.map((g) => `${g.userId} (${g.cause})`).join('; ')}`] : []),
    ...(memberGhosts.length
      ? [
          `  membership ghosts: ${memberGhosts
            .slice(0, 10)
            .map((g) => `${g.userId} in ${g.room} (${g.cause})`)
            .join('; ')}`,
        ]
      : []),
    ...(room.duplicates.length
      ? [
          `  duplicates, examples: ${room.duplicates
            .slice(0, 5)
            .map((d) => `${d.client} ${d.kind} ${d.key} x${d.count}`)
            .join('; ')}`,
        ]
      : []),
    '',
    failures.length ? `  FAIL: ${failures.join(', ')}` : '  PASS: 0 lost, 0 ghosts, 0 wrong offline',
    '',
  ].join('\n');
  process.stdout.write(text + '\n');
  fs.writeFileSync(path.join(OUT, 'summary.txt'), text);

  const sample = <T>(l: T[], n = 20) => l.slice(0, n);
  writeJson('summary.json', {
    seed: SEED,
    seconds: SECONDS,
    pass: failures.length === 0,
    failures,
    startedAt: new Date(r.t0).toISOString(),
    loadStartedAt: new Date(r.loadStart).toISOString(),
    finishedAt: new Date().toISOString(),
    wallSeconds: Math.round((Date.now() - r.t0) / 1000),
    build: r.build,
    settings: {
      residents: RESIDENTS,
      churnUsers: CHURN_USERS,
      awayUsers: AWAY_USERS,
      rooms: ROOMS,
      rates: { roomMessages: ROOM_RATE, directMessages: DIRECT_RATE, publishes: PUBLISH_RATE },
      gatewayEnv: GATEWAY_ENV,
      workerEnv: WORKER_ENV,
      boundMs: BOUND_MS,
      settleMs: SETTLE_MS,
      recheckMs: RECHECK_MS,
      pauseMs: PAUSE_MS,
    },
    load: { acked, failures: r.ledger.failures, skipped: r.ledger.skipped, churnVisits: r.churnVisits, clients: r.records.length },
    verdicts: {
      room: {
        expected: room.expected,
        delivered: room.delivered,
        lostMessages: lostMsg.length,
        lostPublishes: lostPub.length,
        lostByWhen: Object.fromEntries(byKey(room.lost, (l) => `${l.kind} ${l.when}`)),
        lostByPattern: Object.fromEntries(lostPatterns),
        lostByFault: Object.fromEntries(byKey(room.lost, (l) => l.faults.join(' / ') || 'no fault')),
        lostClients: [...new Set(room.lost.map((l) => l.client))].length,
        lostExamples: sample(room.lost),
        excused: room.excused,
        excusedBySessionEnd: room.excusedBySessionEnd,
        unackedDelivered: room.unackedDelivered,
        sessions: room.sessions,
      },
      duplicates: {
        roomMessages: room.duplicates.filter((d) => d.kind === 'msg').length,
        roomPublishes: room.duplicates.filter((d) => d.kind === 'pub').length,
        examples: sample(room.duplicates),
        liveDirect: inbox.liveDuplicates,
        inbox: inbox.inboxDuplicates.length,
      },
      reconnects: {
        recovered: room.recoveredReconnects,
        unrecovered: room.unrecovered.length,
        unrecoveredByCause: Object.fromEntries(byKey(room.unrecovered, (u) => u.cause)),
        examples: sample(room.unrecovered),
      },
      inbox: {
        directAcked: inbox.directAcked,
        noticesAccepted: inbox.noticesAccepted,
        lostDirect: inbox.lostDirect.length,
        lostNotices: inbox.lostNotices.length,
        liveOnlyDirect: inbox.liveOnlyDirect,
        liveOnlyNotices: inbox.liveOnlyNotices,
        examples: { lostDirect: sample(inbox.lostDirect), lostNotices: sample(inbox.lostNotices) },
        incompleteReads: inbox.incompleteReads,
      },
      presence: {
        checkedAt: new Date(check1.at).toISOString(),
        checked: check1.presence.checked,
        ghosts: ghosts.map((g) => ({ userId: g.userId, cause: g.cause, stillThereAtCheck2: g.stillThereAtCheck2 })),
        wrongOffline: wrongOffline.map((g) => ({ userId: g.userId, cause: g.cause, stillThereAtCheck2: g.stillThereAtCheck2 })),
        ambiguous: check1.presence.ambiguous,
        check2: { ghosts: check2.presence.ghosts, wrongOffline: check2.presence.wrongOffline },
      },
      membership: {
        rooms: check1.membership.rooms,
        ghostUsers: check1.membership.ghostUsers,
        ghostSockets: check1.membership.ghostSockets,
        missing: check1.membership.missing,
        memberGhostCauses: memberGhosts.map((g) => ({ userId: g.userId, room: g.room, cause: g.cause })),
        check2: {
          ghostUsers: check2.membership.ghostUsers.length,
          ghostSockets: check2.membership.ghostSockets.length,
          missing: check2.membership.missing.length,
        },
      },
      probes: r.probes,
      stuckClients: r.stuck,
      adminStats: { check1: check1.stats, check2: check2.stats },
    },
    faults: r.faults.map((f) => ({
      seq: f.seq,
      type: f.type,
      target: f.target,
      plannedAtS: f.plannedAtMs / 1000,
      startedAtS: rel(f.startedAt),
      tookS: (f.endedAt - f.startedAt) / 1000,
      ok: f.ok,
      error: f.error,
    })),
    rss: r.rssSummary,
  });
  writeJson('lost.json', { room: room.lost, directs: inbox.lostDirect, notices: inbox.lostNotices }, true);
  writeJson('duplicates.json', { room: room.duplicates, inbox: inbox.inboxDuplicates });
  writeJson('reconnects.json', room.unrecovered);
  writeJson('ghosts.json', {
    presence: { ghosts, wrongOffline },
    membership: { check1: check1.membership, check2: check2.membership },
    memberGhosts,
  });
  writeJson('ledger.json', r.ledger, true);
  // Full timelines (every delivery) of the clients a verdict points at, for diagnosis.
  const suspects = new Set([
    ...room.lost.map((l) => l.client),
    ...room.duplicates.map((d) => d.client),
    ...room.unrecovered.map((u) => u.client),
    ...r.records
      .filter((x) => [...check1.presence.ghosts, ...check1.presence.wrongOffline, ...memberGhosts.map((g) => g.userId)].includes(x.userId))
      .map((x) => x.label),
  ]);
  writeJson(
    'timelines.json',
    r.records.filter((x) => suspects.has(x.label)),
    true,
  );
  writeJson(
    'clients.json',
    r.records.map((rec) => ({
      ...rec,
      deliveries: rec.deliveries.length,
      directs: rec.directs.length,
      notices: rec.notices.length,
      engineEvents: rec.engineEvents.length,
    })),
    true,
  );
  log(`results in ${path.relative(ROOT, OUT)}/ (summary.json, summary.txt, faults.jsonl, rss.csv, logs/, ...)`);
  return { failures };
}

describe('chaos soak (make soak)', () => {
  test(`state converges after random faults (seed ${SEED}, ${SECONDS} s)`, async () => {
    const { failures } = await runSoak().catch((e: Error) => {
      log(`the soak could not run: ${e.stack ?? e.message}`);
      throw e;
    });
    expect(failures).toEqual([]);
  });
});
