/**
 * Recovery storm: a pod dies and its clients recover their sessions on the survivors.
 *
 * 3 server processes. Background traffic in rooms the storm does not touch: BENCH_RECOVERY_BG_ROOMS
 * rooms of 2 members (one on process 2, one on process 3), the members sending BENCH_RECOVERY_BG_RATE
 * msg/s in total, all along. BENCH_RECOVERY_CLIENTS clients connected straight to process 1, in rooms
 * of BENCH_RECOVERY_ROOM_SIZE (all members there), every client its own user; senders on processes
 * 2 and 3 (not members) send BENCH_RECOVERY_ROOM_RATE msg/s into those rooms, one message per room
 * first so that every client holds an offset.
 *
 * Phases, for the gateway and for bare Socket.IO (bench/bare-server.ts, streams adapter):
 *  - `kill`: process 1 is SIGKILLed with its BENCH_RECOVERY_CLIENTS clients;
 *  - then `drop` (BENCH_RECOVERY_DROP_CLIENTS, 0 skips it): another group of clients, on process 2
 *    and in rooms of their own, lose their connections (closed client side; the process stays up
 *    and sees "transport close", so bare Socket.IO persists their sessions too). It runs last
 *    because bare Socket.IO's survivors can stay busy with it long after.
 * Right after the cut, BENCH_RECOVERY_BURST more messages go into each of the group's rooms (while
 * the clients are away: something to miss). Each client reconnects after socket.io-client's first
 * reconnection delay (1 s +/- 50 %), half to process 2 and half to process 3, sending what
 * socket.io-client v4 sends in its CONNECT packet: `{ pid, offset, ...auth }` (the last `pid` the
 * server gave it, the last string argument of the last event it got); failed attempts retry with
 * socket.io-client's back-off, keeping them. A client the server does not recover (a new pid)
 * joins its room again, as an application would.
 *
 * Measured per phase: time from the cut until every client is back and until every client is
 * recovered; recovered / fresh sessions; on the gateway, Redis entries read per restore
 * (realtime_gateway_recovery_entries_read_total over restores) and the refusals by reason
 * (realtime_gateway_recovery_refused_total{reason}), from the survivors' /metrics; what each
 * client actually missed (messages of its room it got on its new connection that were sent
 * before that connection was up); lost messages (acked to their sender, never received:
 * separately for recovered and for fresh sessions) and duplicates; survivors' and Redis CPU from
 * the cut until all were back, above the steady state's rate before the cut; how the background
 * traffic fared meanwhile. Bare Socket.IO exposes no metrics: what its restores read is counted
 * from its stream afterwards (the entries after each client's offset up to the moment its
 * CONNECT answer arrived: the streams adapter XRANGEs the whole tail, whatever rooms it holds).
 *
 * `BENCH_ONLY=recovery-storm npm run bench`; numbers also in .bench/recovery-storm.json.
 */
import fs from 'fs';
import path from 'path';
import { performance } from 'perf_hooks';
import { aboveIdle, cpuWindow, type CpuWindow } from './lib/cpu';
import { byLabel, diffRecord, metricsText, sum } from './lib/metrics';
import { formatPerf, perfAvailable, perfRecord, perfSummary, removePerfMaps } from './lib/perf';
import { sleep } from './lib/proc';
import { commandCounts, diffCounts } from './lib/redis-stats';
import { envInt, percentile, Row, writeBenchJson } from './lib/report';
import { connectMany, SioClient } from './lib/sio-client';
import { Cluster, Kind, KINDS, kindOrder, startCluster } from './lib/targets';
import type { Benchmark, BenchContext, BenchResult } from './lib/types';

interface Params {
  clients: number;
  dropClients: number;
  roomSize: number;
  roomRate: number;
  burst: number;
  bgRooms: number;
  bgRate: number;
  senders: number;
  warmSeconds: number;
  afterSeconds: number;
  maxWaitMs: number;
  connectTimeoutMs: number;
  payloadBytes: number;
  order: Kind[];
  perf: boolean;
}

function params(): Params {
  const order = kindOrder();
  return {
    clients: envInt('BENCH_RECOVERY_CLIENTS', 2000, 1, 20000),
    dropClients: envInt('BENCH_RECOVERY_DROP_CLIENTS', 200, 0, 20000),
    roomSize: envInt('BENCH_RECOVERY_ROOM_SIZE', 4, 1, 8),
    roomRate: envInt('BENCH_RECOVERY_ROOM_RATE', 200, 1, 100000),
    burst: envInt('BENCH_RECOVERY_BURST', 2, 0, 100),
    bgRooms: envInt('BENCH_RECOVERY_BG_ROOMS', 200, 1, 10000),
    bgRate: envInt('BENCH_RECOVERY_BG_RATE', 2000, 0, 100000),
    senders: envInt('BENCH_RECOVERY_SENDERS', 20, 2, 1000),
    warmSeconds: envInt('BENCH_RECOVERY_WARM_SECONDS', 5, 1, 600),
    afterSeconds: envInt('BENCH_RECOVERY_AFTER_SECONDS', 3, 1, 600),
    maxWaitMs: envInt('BENCH_RECOVERY_MAX_WAIT_MS', 60000, 1000, 600000),
    connectTimeoutMs: envInt('BENCH_RECOVERY_CONNECT_TIMEOUT_MS', 20000, 1000, 120000),
    payloadBytes: envInt('BENCH_PAYLOAD_BYTES', 128, 0, 16000),
    order,
    perf: process.env.BENCH_PERF === '1' && perfAvailable(),
  };
}

const RE = /"b":"(\w+)","s":(\d+),"t":([\d.]+)/;

/** Messages of one set of rooms: who should get what, who got what. */
class Ledger {
  private cap = 1 << 16;
  roomOf = new Int32Array(this.cap);
  sentAt = new Float64Array(this.cap);
  /** 1: acked ok; 2: answered with an error (or never). */
  ack = new Uint8Array(this.cap);
  /** Bit k: member k of the room got it. */
  got = new Uint8Array(this.cap);
  n = 0;
  acked = 0;
  /** Messages whose sender got an answer (ok or not). */
  answered = 0;
  unique = 0;
  duplicates = 0;
  lastRecv = 0;
  ackErrorSamples: unknown[] = [];
  constructor(readonly tag: string) {}

  next(room: number, now: number): number {
    if (this.n === this.cap) this.grow();
    const s = this.n++;
    this.roomOf[s] = room;
    this.sentAt[s] = now;
    return s;
  }

  private grow(): void {
    const cap = this.cap * 2;
    const copy = <T extends Int32Array | Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.roomOf = copy(this.roomOf, (n) => new Int32Array(n));
    this.sentAt = copy(this.sentAt, (n) => new Float64Array(n));
    this.ack = copy(this.ack, (n) => new Uint8Array(n));
    this.gotAfter = copy(this.gotAfter, (n) => new Uint8Array(n));
    this.got = copy(this.got, (n) => new Uint8Array(n));
    this.cap = cap;
  }

  acknowledged(seq: number, answer: unknown): void {
    this.answered++;
    if ((answer as { ok?: boolean })?.ok) {
      this.ack[seq] = 1;
      this.acked++;
    } else {
      this.ack[seq] = 2;
      if (this.ackErrorSamples.length < 5) this.ackErrorSamples.push(answer);
    }
  }

  /** true when new for that member. */
  /** Bit k: member k got it on a new connection (after its cut). */
  gotAfter = new Uint8Array(this.cap);
  /** A few duplicates, to tell where they came from. */
  dupSamples: Array<{
    seq: number;
    room: number;
    member: number;
    firstOnNewConnection: boolean;
    againOnNewConnection: boolean;
    /** The member's connection (1 = the first, then one per reconnection attempt) that got it first, and again. */
    firstGen: number;
    gen: number;
    sentMsAgo: number;
  }> = [];

  /** Which connection (1 = the first) of a member first got a message, for the ones got on a later connection (key seq * 8 + member). */
  firstGen = new Map<number, number>();

  record(seq: number, room: number, member: number, now: number, gen = 1): boolean {
    if (seq >= this.n || this.roomOf[seq] !== room) return false;
    const newConnection = gen > 1;
    const bit = 1 << member;
    if (this.got[seq] & bit) {
      this.duplicates++;
      if (this.dupSamples.length < 10)
        this.dupSamples.push({
          seq,
          room,
          member,
          firstOnNewConnection: (this.gotAfter[seq] & bit) !== 0,
          againOnNewConnection: newConnection,
          firstGen: this.firstGen.get(seq * 8 + member) ?? 1,
          gen,
          sentMsAgo: Math.round(now - this.sentAt[seq]),
        });
      return false;
    }
    this.got[seq] |= bit;
    if (newConnection) {
      this.gotAfter[seq] |= bit;
      this.firstGen.set(seq * 8 + member, gen);
    }
    this.unique++;
    this.lastRecv = now;
    return true;
  }
}

/** CPU ticks of the whole machine so far (/proc/stat): busy (everything but idle and iowait) and total. */
function machineTicks(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}

/** Paced sends until stopped: `send(i)` for i = 0, 1, ... at `rate` per second. */
function paced(rate: number, send: (i: number) => void): { stop(): void; count(): number; late(): number } {
  let stopped = false;
  let i = 0;
  let late = 0;
  const t0 = performance.now();
  void (async () => {
    while (!stopped) {
      const now = performance.now();
      const due = Math.floor(((now - t0) * rate) / 1000) + 1;
      // sends whose scheduled time is more than 50 ms ago
      const overdue = Math.floor(((now - 50 - t0) * rate) / 1000) + 1;
      if (overdue > i) late += overdue - i;
      while (i < due && !stopped) send(i++);
      await sleep(4);
    }
  })();
  return { stop: () => void (stopped = true), count: () => i, late: () => late };
}

interface Member {
  i: number;
  room: number;
  k: number;
  auth?: Record<string, unknown>;
  conn: SioClient;
  gen: number;
  pidAtCut?: string;
  offsetAtCut?: string;
  /** When the last message it got on its first connection was sent (the message its offset names). */
  lastSentAt?: number;
  cutAt?: number;
  firstAttemptAt?: number;
  connectedAt?: number;
  /** Server the client came back to (index). */
  server?: number;
  recovered?: boolean;
  fresh?: boolean;
  attempts: number;
  errors: string[];
  /** Messages of its room it got on its new connection that were sent before that connection was up. */
  missed: number;
}

/** A group of clients on one process, in rooms of their own, that lose their connections together. */
class Group {
  members: Member[] = [];
  ledger: Ledger;
  armed = false;
  constructor(
    readonly name: string,
    readonly rooms: number,
    readonly roomSize: number,
    /** The process its clients are connected to at first (they come back to process 2 or 3). */
    readonly home: number,
  ) {
    this.ledger = new Ledger(`${name[0]}${Math.random().toString(36).slice(2, 8)}`);
  }
  roomName(r: number): string {
    return `${this.name}-${r}`;
  }
  onEvent(m: Member, gen: number, raw: string): void {
    if (!raw.startsWith('42["message"')) return;
    const x = RE.exec(raw);
    if (!x || x[1] !== this.ledger.tag) return;
    const seq = Number(x[2]);
    const now = performance.now();
    const fresh = this.ledger.record(seq, m.room, m.k, now, gen);
    if (gen === 1 && fresh) m.lastSentAt = Math.max(m.lastSentAt ?? 0, this.ledger.sentAt[seq]);
    if (fresh && gen > 1 && (m.connectedAt === undefined || this.ledger.sentAt[seq] < m.connectedAt)) m.missed++;
  }
}

interface Recovery {
  metrics: Record<string, number>;
  refused: Record<string, number>;
  /** Survivors whose /metrics did not answer (their counters are then missing from the sums). */
  missing: string[];
}

/** Recovery counters of the survivors (processes 2 and 3; NaN for bare, which has none). */
async function recoveryCounters(cluster: Cluster): Promise<Recovery> {
  const out: Recovery = { metrics: {}, refused: {}, missing: [] };
  for (const s of cluster.servers.slice(1)) {
    if (!s.metricsPort) continue;
    // A survivor busy with the storm can be slow to answer: retry; a counter it never gave is NaN, not 0.
    let text = '';
    for (let i = 0; i < 3 && !text; i++) text = await metricsText(s.metricsPort, 20000);
    if (!text) out.missing.push(s.name);
    for (const name of [
      'realtime_gateway_recovery_attempts_total',
      'realtime_gateway_recovery_successes_total',
      'realtime_gateway_recovery_entries_read_total',
    ])
      out.metrics[name] = (out.metrics[name] ?? 0) + (text ? sum(text, name) : NaN);
    for (const [k, v] of Object.entries(byLabel(text, 'realtime_gateway_recovery_refused_total', 'reason')))
      out.refused[k] = (out.refused[k] ?? 0) + v;
  }
  return out;
}

export interface PhaseNumbers {
  phase: 'drop' | 'kill';
  clients: number;
  back: number;
  recovered: number;
  fresh: number;
  /** ms from the cut until every client was back / every client recovered (NaN when some never were). */
  allBackMs: number;
  allRecoveredMs: number;
  /** Per client: cut to connected, first attempt to connected (ms). */
  backMs: { p50: number; p90: number; p99: number; max: number };
  handshakeMs: { p50: number; p90: number; p99: number; max: number };
  attempts: number;
  failedAttempts: number;
  errorSamples: string[];
  messages: { sent: number; acked: number; ackErrors: number; burst: number };
  /** Deliveries owed (acked messages x room members) and missing, by kind of session. */
  expected: number;
  lostRecovered: number;
  lostFresh: number;
  duplicates: number;
  dupSamples: Ledger['dupSamples'];
  /** Sum over recovered clients of what they missed. */
  missedTotal: number;
  missedPerRecovered: number;
  /** Redis entries read by the restores: gateway from its metric, bare counted from the stream. */
  entriesRead: number;
  restores: number;
  entriesReadPerRestore: number;
  readPerMissed: number;
  refused: Record<string, number>;
  recoveryMetrics: Record<string, number>;
  /** Survivors whose /metrics did not answer before or after the phase (its recovery counters are then NaN). */
  metricsMissing: string[];
  /** Background messages sent from the cut until all were back (or the wait ended): how many, acked, deliveries missing at the end. */
  bgDuring: { sent: number; acked: number; lost: number; ratePerSec: number };
  /** Share of the machine's CPU time (all cores, /proc/stat) busy from the cut until all were back. */
  machineBusy: number;
  /** CPU of the benchmark process itself (the clients) over that window. */
  benchClientCpuMs: number;
  /** Redis commands over that window (INFO commandstats). */
  redisCommands: Record<string, number>;
  /** performance.now() bounds of that window. */
  window: { from: number; to: number };
  /** Survivors and Redis from the cut until all were back, and over the steady state before the cut. */
  cpu: { survivors: CpuWindow; redis: CpuWindow };
  steady: { survivors: CpuWindow; redis: CpuWindow };
  /** Survivors + Redis CPU ms per client back, from the cut until all were back, above the steady state's rate. */
  cpuMsPerClient: number;
}

interface KindNumbers {
  phases: PhaseNumbers[];
  bg: {
    sent: number;
    acked: number;
    expected: number;
    lost: number;
    duplicates: number;
    ratePerSec: number;
    lateSends: number;
    seconds: number;
    ackErrorSamples: unknown[];
  };
  setupSeconds: number;
  /** The end of the survivors' output (warnings and errors), when a phase did not get every client back or messages were refused. */
  logTail?: string[];
  profile?: string;
}

async function runKind(kind: Kind, p: Params, ctx: BenchContext, signal: AbortSignal): Promise<KindNumbers> {
  const redis = await ctx.redis();
  const tag = Math.random().toString(36).slice(2, 8);
  const prefix = `bst${kind[0]}${tag}`;
  ctx.log(`recovery-storm/${kind}: 3 server processes`);
  const cluster = await startCluster(kind, 3, { redisUrl: redis.url, prefix, nodeArgs: p.perf ? ['--perf-basic-prof'] : [] });
  let profile: string | undefined;
  const all: SioClient[] = [];
  const t0 = performance.now();
  const abortIf = () => {
    if (signal.aborted) throw new Error('aborted (benchmark time bound reached)');
  };
  let bgPacer: ReturnType<typeof paced> | undefined;
  let roomPacer: ReturnType<typeof paced> | undefined;
  try {
    const url = (i: number) => cluster.servers[i].url;
    // Background rooms: 2 members, one on process 2 and one on process 3.
    const bg = new Ledger(`g${tag}`);
    let bgLast = 0;
    const bgClients = await connectMany(p.bgRooms * 2, 50, async (i) => {
      const r = Math.floor(i / 2);
      const k = i % 2;
      return SioClient.connect(url(1 + k), {
        auth: await cluster.auth(`bg${tag}-${i}`),
        timeoutMs: 30000,
        onEvent: (raw) => {
          if (!raw.startsWith('42["message"')) return;
          const x = RE.exec(raw);
          if (x && x[1] === bg.tag) bg.record(Number(x[2]), r, k, performance.now());
        },
      });
    });
    all.push(...bgClients);
    await pool(bgClients.length, 50, async (i) => {
      const a = (await bgClients[i].emitWithAck('join-room', `bg-${Math.floor(i / 2)}`)) as { ok?: boolean };
      if (!a?.ok) throw new Error(`bg client ${i}: join-room ${JSON.stringify(a)}`);
    });
    const senders = await connectMany(p.senders, 20, async (j) =>
      SioClient.connect(url(1 + (j % 2)), { auth: await cluster.auth(`snd${tag}-${j}`) }),
    );
    all.push(...senders);
    abortIf();

    const groups: Group[] = [];
    const size = p.roomSize;
    // The kill first: the drop phase can leave bare Socket.IO's survivors busy for a long time.
    const killGroup = new Group('sk', Math.ceil(p.clients / size), size, 0);
    groups.push(killGroup);
    if (p.dropClients > 0) groups.push(new Group('sd', Math.ceil(p.dropClients / size), size, 1));
    for (const g of groups) {
      const n = g.name === 'sk' ? p.clients : p.dropClients;
      const conns = await connectMany(n, 50, async (i) => {
        const m: Member = {
          i,
          room: Math.floor(i / size),
          k: i % size,
          auth: await cluster.auth(`${g.name}${tag}-${i}`),
          conn: undefined as unknown as SioClient,
          gen: 1,
          attempts: 0,
          errors: [],
          missed: 0,
        };
        g.members[i] = m;
        m.conn = await SioClient.connect(url(g.home), {
          auth: m.auth,
          timeoutMs: 30000,
          trackOffset: true,
          onEvent: (raw) => g.onEvent(m, 1, raw),
        });
        return m.conn;
      });
      all.push(...conns);
      await pool(n, 50, async (i) => {
        const m = g.members[i];
        const a = (await m.conn.emitWithAck('join-room', g.roomName(m.room))) as { ok?: boolean };
        if (!a?.ok) throw new Error(`${g.name} client ${i}: join-room ${JSON.stringify(a)}`);
      });
      ctx.log(`recovery-storm/${kind}: ${n} clients of group ${g.name} on process ${g.home + 1}, in ${g.rooms} rooms`);
    }
    const setupSeconds = (performance.now() - t0) / 1000;
    abortIf();

    const pad = 'x'.repeat(p.payloadBytes);
    const sendTo = (ledger: Ledger, sender: SioClient, room: number, roomName: string) => {
      const ts = performance.now();
      const seq = ledger.next(room, ts);
      void sender.emitWithAck('message', { roomId: roomName, data: { b: ledger.tag, s: seq, t: ts, p: pad } }).then((a) => {
        ledger.acknowledged(seq, a);
      });
    };
    const bgStart = performance.now();
    if (p.bgRate > 0)
      bgPacer = paced(p.bgRate, (i) => {
        const r = i % p.bgRooms;
        const k = Math.floor(i / p.bgRooms) % 2;
        bgLast = performance.now();
        sendTo(bg, bgClients[r * 2 + k], r, `bg-${r}`);
      });
    ctx.log(`recovery-storm/${kind}: background traffic ${p.bgRate} msg/s in ${p.bgRooms} rooms`);

    const phases: PhaseNumbers[] = [];
    for (const g of groups) {
      const phase: 'drop' | 'kill' = g === killGroup ? 'kill' : 'drop';
      // One message per room first: every client then holds an offset (bare appends one to room messages only).
      for (let r = 0; r < g.rooms; r++) {
        sendTo(g.ledger, senders[r % senders.length], r, g.roomName(r));
        if (r % 50 === 49) await sleep(50);
      }
      let roomSends = 0;
      roomPacer = paced(p.roomRate, (i) => {
        roomSends++;
        const r = Math.floor(Math.random() * g.rooms);
        sendTo(g.ledger, senders[i % senders.length], r, g.roomName(r));
      });
      // The steady state before the cut (background + room traffic): what the storm adds is measured above it.
      await sleep(1000);
      const steadySurvivors = cpuWindow(cluster.servers.slice(1).map((s) => s.pid));
      const steadyRedis = cpuWindow([redis.proc.pid]);
      await sleep(Math.max(1, p.warmSeconds - 1) * 1000);
      abortIf();
      const steady = { survivors: steadySurvivors.stop(), redis: steadyRedis.stop() };
      const before = await recoveryCounters(cluster);
      const survivors = cpuWindow(cluster.servers.slice(1).map((s) => s.pid));
      const redisCpu = cpuWindow([redis.proc.pid]);
      const cmd0 = await commandCounts(redis.url);
      const perfFile = path.join(ctx.outDir, 'profiles', `perf-storm-${kind}-${phase}.data`);
      let perf: ReturnType<typeof perfRecord> | undefined;
      if (p.perf && phase === 'kill') {
        fs.mkdirSync(path.dirname(perfFile), { recursive: true });
        perf = perfRecord([...cluster.servers.slice(1).map((s) => s.pid), redis.proc.pid], perfFile);
        await sleep(500);
      }
      const machine0 = machineTicks();
      const self0 = process.cpuUsage();
      let cutAt = performance.now();
      const reconnects: Promise<void>[] = [];
      const reconnect = (m: Member) => {
        m.cutAt ??= performance.now();
        m.pidAtCut = m.conn.pid;
        m.offsetAtCut = m.conn.lastOffset;
        const auth = m.conn.recoveryAuth(m.auth);
        reconnects.push(
          (async () => {
            let delay = 1000 * (0.5 + Math.random());
            const deadline = cutAt + p.maxWaitMs;
            for (let attempt = 1; performance.now() < deadline && !signal.aborted; attempt++) {
              await sleep(delay);
              const server = 1 + (m.i % 2);
              m.firstAttemptAt ??= performance.now();
              m.attempts++;
              const gen = ++m.gen;
              try {
                const conn = await SioClient.connect(url(server), {
                  auth,
                  timeoutMs: p.connectTimeoutMs,
                  trackOffset: true,
                  onEvent: (raw) => g.onEvent(m, gen, raw),
                });
                m.connectedAt = performance.now();
                m.conn = conn;
                all.push(conn);
                m.server = server;
                m.recovered = !!m.pidAtCut && conn.pid === m.pidAtCut;
                if (!m.recovered) {
                  m.fresh = true;
                  await conn.emitWithAck('join-room', g.roomName(m.room));
                }
                return;
              } catch (e) {
                if (m.errors.length < 3) m.errors.push((e as Error).message);
                delay = Math.min(5000, 1000 * 2 ** attempt) * (0.5 + Math.random());
              }
            }
          })(),
        );
      };
      ctx.log(`recovery-storm/${kind} ${phase}: cutting ${g.members.length} clients`);
      if (phase === 'kill') {
        for (const m of g.members) m.conn.onClose = () => reconnect(m);
        cutAt = performance.now();
        cluster.servers[0].proc.proc.kill('SIGKILL');
      } else {
        cutAt = performance.now();
        for (const m of g.members) {
          m.cutAt = cutAt;
          reconnect(m);
          m.conn.terminate();
        }
      }
      // Something to miss: a burst into every room of the group while its clients are away.
      let burst = 0;
      for (let b = 0; b < p.burst; b++)
        for (let r = 0; r < g.rooms; r++) {
          sendTo(g.ledger, senders[(r + b) % senders.length], r, g.roomName(r));
          burst++;
          if (burst % 100 === 0) await sleep(20);
        }
      const deadline = cutAt + p.maxWaitMs + 30000;
      while (g.members.some((m) => m.connectedAt === undefined) && performance.now() < deadline && !signal.aborted) {
        if (g.members.every((m) => m.cutAt !== undefined) && reconnects.length === g.members.length) {
          await Promise.race([Promise.all(reconnects), sleep(200)]);
        } else await sleep(100);
      }
      const cpu = { survivors: survivors.stop(), redis: redisCpu.stop() };
      const windowEnd = performance.now();
      const machine1 = machineTicks();
      const self = process.cpuUsage(self0);
      const commands = diffCounts(cmd0, await commandCounts(redis.url));
      if (perf) {
        await perf.stop();
        const nBack = g.members.filter((m) => m.connectedAt !== undefined).length;
        try {
          profile = formatPerf(
            `perf CPU profile, ${kind}, the survivors and Redis from the SIGKILL until all were back (background traffic included; ${path.relative(process.cwd(), perfFile)})`,
            perfSummary(perfFile, 40),
            (cpu.survivors.total + cpu.redis.total) / (Math.max(1, nBack) / 1000),
            'clients back',
          );
        } catch (e) {
          profile = `perf report failed for ${kind}: ${(e as Error).message}`;
        }
      }
      const back = g.members.filter((m) => m.connectedAt !== undefined);
      ctx.log(
        `recovery-storm/${kind} ${phase}: ${back.length}/${g.members.length} back, ${back.filter((m) => m.recovered).length} recovered`,
      );
      await sleep(p.afterSeconds * 1000);
      roomPacer.stop();
      roomPacer = undefined;
      await answered(g.ledger, 10000);
      await drain(g.ledger, g.roomSize, 2000, 15000);
      const after = await recoveryCounters(cluster);
      const metrics = diffRecord(before.metrics, after.metrics);
      const refused = diffRecord(before.refused, after.refused);

      // Deliveries owed and missing.
      let expected = 0;
      let lostRecovered = 0;
      let lostFresh = 0;
      const L = g.ledger;
      const byRoom = new Map<number, Member[]>();
      for (const m of g.members) (byRoom.get(m.room) ?? byRoom.set(m.room, []).get(m.room)!).push(m);
      for (let s = 0; s < L.n; s++) {
        if (L.ack[s] !== 1) continue;
        for (const m of byRoom.get(L.roomOf[s]) ?? []) {
          expected++;
          if (L.got[s] & (1 << m.k)) continue;
          if (m.recovered) lostRecovered++;
          else lostFresh++;
        }
      }
      const recovered = back.filter((m) => m.recovered);
      const missedTotal = recovered.reduce((a, m) => a + m.missed, 0);
      let entriesRead = metrics['realtime_gateway_recovery_entries_read_total'] ?? NaN;
      let restores = metrics['realtime_gateway_recovery_successes_total'] ?? NaN;
      if (kind === 'bare') {
        restores = recovered.length;
        entriesRead = bareEntriesRead([bg, ...groups.map((x) => x.ledger)], recovered);
      }
      const times = (f: (m: Member) => number) => {
        const xs = Float64Array.from(back.map(f)).sort();
        return { p50: percentile(xs, 50), p90: percentile(xs, 90), p99: percentile(xs, 99), max: xs.length ? xs[xs.length - 1] : NaN };
      };
      const allBack = back.length === g.members.length;
      const cpuMs = aboveIdle(cpu.survivors, steady.survivors) + aboveIdle(cpu.redis, steady.redis);
      const n: PhaseNumbers = {
        phase,
        clients: g.members.length,
        back: back.length,
        recovered: recovered.length,
        fresh: back.length - recovered.length,
        allBackMs: allBack ? Math.max(...back.map((m) => m.connectedAt! - cutAt)) : NaN,
        allRecoveredMs: allBack && recovered.length === back.length ? Math.max(...back.map((m) => m.connectedAt! - cutAt)) : NaN,
        backMs: times((m) => m.connectedAt! - cutAt),
        handshakeMs: times((m) => m.connectedAt! - m.firstAttemptAt!),
        attempts: g.members.reduce((a, m) => a + m.attempts, 0),
        failedAttempts: g.members.reduce((a, m) => a + m.attempts - (m.connectedAt !== undefined ? 1 : 0), 0),
        errorSamples: g.members.flatMap((m) => m.errors).slice(0, 5),
        messages: { sent: L.n, acked: L.acked, ackErrors: L.n - L.acked, burst },
        expected,
        lostRecovered,
        lostFresh,
        duplicates: L.duplicates,
        dupSamples: L.dupSamples,
        missedTotal,
        missedPerRecovered: recovered.length ? missedTotal / recovered.length : NaN,
        entriesRead,
        restores,
        entriesReadPerRestore: restores ? entriesRead / restores : NaN,
        readPerMissed: missedTotal ? entriesRead / missedTotal : NaN,
        refused,
        recoveryMetrics: metrics,
        metricsMissing: [...new Set([...before.missing, ...after.missing])],
        bgDuring: { sent: 0, acked: 0, lost: 0, ratePerSec: NaN },
        machineBusy: (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total),
        benchClientCpuMs: (self.user + self.system) / 1000,
        redisCommands: Object.fromEntries(Object.entries(commands).sort((a, b) => b[1] - a[1])),
        window: { from: cutAt, to: windowEnd },
        cpu,
        steady,
        cpuMsPerClient: back.length ? cpuMs / back.length : NaN,
      };
      ctx.log(
        `recovery-storm/${kind} ${phase}: all back in ${(n.allBackMs / 1000).toFixed(2)} s, recovered ${n.recovered}/${n.clients}, ` +
          `read ${n.entriesReadPerRestore.toFixed(1)}/restore vs missed ${n.missedPerRecovered.toFixed(1)}, lost ${lostRecovered} (+${lostFresh} in fresh sessions), dup ${L.duplicates}, ` +
          `room msgs sent ${roomSends}+${burst} burst`,
      );
      phases.push(n);
    }
    bgPacer?.stop();
    const bgSeconds = ((bgLast || performance.now()) - bgStart) / 1000;
    await answered(bg, 10000);
    await drain(bg, 2, 2000, 15000);
    let bgExpected = 0;
    let bgLost = 0;
    for (let s = 0; s < bg.n; s++) {
      const during = phases.find((ph) => bg.sentAt[s] >= ph.window.from && bg.sentAt[s] < ph.window.to)?.bgDuring;
      if (during) during.sent++;
      if (bg.ack[s] !== 1) continue;
      bgExpected += 2;
      if (during) during.acked++;
      for (let k = 0; k < 2; k++)
        if (!(bg.got[s] & (1 << k))) {
          bgLost++;
          if (during) during.lost++;
        }
    }
    for (const ph of phases) ph.bgDuring.ratePerSec = ph.bgDuring.acked / ((ph.window.to - ph.window.from) / 1000);
    return {
      phases,
      bg: {
        sent: bg.n,
        acked: bg.acked,
        expected: bgExpected,
        lost: bgLost,
        duplicates: bg.duplicates,
        ratePerSec: bg.acked / bgSeconds,
        lateSends: bgPacer?.late() ?? 0,
        seconds: bgSeconds,
        ackErrorSamples: bg.ackErrorSamples,
      },
      setupSeconds,
      logTail:
        phases.some((ph) => ph.back < ph.clients) || bg.acked < bg.n
          ? cluster.servers.slice(1).map((s) => `${s.name}: ${s.proc.output().slice(-1200).replace(/\s+/g, ' ')}`)
          : undefined,
      profile,
    };
  } finally {
    if (p.perf && process.env.BENCH_KEEP_PERF_MAPS !== '1') removePerfMaps(cluster.servers.map((s) => s.pid));
    bgPacer?.stop();
    roomPacer?.stop();
    for (const c of all) c.terminate();
    await cluster.stop();
  }
}

/**
 * Waits until every message sent has its answer (at most `maxMs`): the last ones sent before a
 * pacer stopped are still in flight, and closing the clients would count them as ack errors.
 */
async function answered(l: Ledger, maxMs: number): Promise<void> {
  const end = performance.now() + maxMs;
  while (l.answered < l.n && performance.now() < end) await sleep(20);
}

/** Waits until every acked message reached every member, nothing arrived for `quietMs`, or `maxMs`. */
async function drain(l: Ledger, members: number, quietMs: number, maxMs: number): Promise<void> {
  const start = performance.now();
  while (l.unique < l.acked * members && performance.now() - start < maxMs && performance.now() - Math.max(l.lastRecv, start) < quietMs)
    await sleep(20);
}

async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/**
 * What the streams adapter's restores read: restoreSession XRANGEs its one stream from the
 * client's offset to "+", again and again until a read comes back empty (at most 100 reads), and
 * decodes every entry, whatever room it is for. Bare Socket.IO writes one entry per broadcast, so
 * for each recovered client that is about every message published (all rooms, every ledger)
 * after the one its offset names and before its CONNECT answer arrived. Counted from the
 * benchmark's own send times (the stream itself may be trimmed by then).
 */
function bareEntriesRead(ledgers: Ledger[], recovered: Member[]): number {
  const all: number[] = [];
  for (const l of ledgers) for (let i = 0; i < l.n; i++) all.push(l.sentAt[i]);
  const sent = Float64Array.from(all).sort();
  const upTo = (t: number) => {
    let lo = 0;
    let hi = sent.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sent[mid] <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  let total = 0;
  for (const m of recovered)
    if (m.lastSentAt !== undefined && m.connectedAt !== undefined) total += upTo(m.connectedAt) - upTo(m.lastSentAt);
  return total;
}

export const recoveryStorm: Benchmark = {
  name: 'recovery-storm',
  description:
    'SIGKILL a gateway holding 2,000 clients while 2,000 msg/s flow elsewhere: time to recover, entries read per restore, losses (gateway vs bare)',
  timeoutMs: 900_000,
  async run(ctx, signal): Promise<BenchResult> {
    const p = params();
    const runs = {} as Record<Kind, KindNumbers>;
    for (const kind of p.order) runs[kind] = await runKind(kind, p, ctx, signal);
    const rows: Row[] = [];
    const phasesOf = (k: Kind) => runs[k].phases;
    for (const phase of ['kill', 'drop'] as const) {
      const g = phasesOf('gateway').find((x) => x.phase === phase);
      const b = phasesOf('bare').find((x) => x.phase === phase);
      if (!g || !b) continue;
      const pre = phase === 'kill' ? `SIGKILL, ${g.clients} clients:` : `connections dropped, ${g.clients} clients:`;
      rows.push(
        {
          metric: `${pre} time until all recovered (s)`,
          gateway: g.allRecoveredMs / 1000,
          bare: b.allRecoveredMs / 1000,
          digits: 2,
          gatewayTarget: phase === 'kill' ? { max: 10 } : undefined,
        },
        { metric: `${pre} time until all back, recovered or not (s)`, gateway: g.allBackMs / 1000, bare: b.allBackMs / 1000, digits: 2 },
        { metric: `${pre} back per client, p50 (s from the cut)`, gateway: g.backMs.p50 / 1000, bare: b.backMs.p50 / 1000, digits: 2 },
        { metric: `${pre} back per client, p99 (s from the cut)`, gateway: g.backMs.p99 / 1000, bare: b.backMs.p99 / 1000, digits: 2 },
        {
          metric: `${pre} handshake p50 (s, first attempt to connected)`,
          gateway: g.handshakeMs.p50 / 1000,
          bare: b.handshakeMs.p50 / 1000,
          digits: 2,
        },
        { metric: `${pre} recovered sessions`, gateway: g.recovered, bare: b.recovered, noRatio: true },
        { metric: `${pre} fresh sessions`, gateway: g.fresh, bare: b.fresh, noRatio: true },
        { metric: `${pre} messages missed per recovered client`, gateway: g.missedPerRecovered, bare: b.missedPerRecovered, digits: 2 },
        { metric: `${pre} Redis entries read per restore`, gateway: g.entriesReadPerRestore, bare: b.entriesReadPerRestore, digits: 1 },
        {
          metric: `${pre} entries read / messages missed`,
          gateway: g.readPerMissed,
          bare: b.readPerMissed,
          digits: 2,
          gatewayTarget: phase === 'kill' ? { max: 10 } : undefined,
        },
        {
          metric: `${pre} lost (recovered sessions)`,
          gateway: g.lostRecovered,
          bare: b.lostRecovered,
          noRatio: true,
          gatewayTarget: phase === 'kill' ? { max: 0 } : undefined,
        },
        { metric: `${pre} lost (fresh sessions: not recovered)`, gateway: g.lostFresh, bare: b.lostFresh, noRatio: true },
        { metric: `${pre} duplicates`, gateway: g.duplicates, bare: b.duplicates, noRatio: true },
        {
          metric: `${pre} survivors + Redis CPU ms per client back (above steady state)`,
          gateway: g.cpuMsPerClient,
          bare: b.cpuMsPerClient,
          digits: 2,
        },
        { metric: `${pre} background msg/s acked meanwhile`, gateway: g.bgDuring.ratePerSec, bare: b.bgDuring.ratePerSec, digits: 0 },
        { metric: `${pre} background deliveries lost meanwhile`, gateway: g.bgDuring.lost, bare: b.bgDuring.lost, noRatio: true },
      );
    }
    const gb = runs.gateway.bg;
    const bb = runs.bare.bg;
    rows.push(
      { metric: 'background: msg/s acked (other rooms, all along)', gateway: gb.ratePerSec, bare: bb.ratePerSec, digits: 0 },
      { metric: 'background: lost deliveries', gateway: gb.lost, bare: bb.lost, noRatio: true },
      { metric: 'background: duplicates', gateway: gb.duplicates, bare: bb.duplicates, noRatio: true },
      { metric: 'background: ack errors', gateway: gb.sent - gb.acked, bare: bb.sent - bb.acked, noRatio: true },
    );
    const notes = [
      `3 processes; ${p.clients} clients on process 1 in rooms of ${p.roomSize} (kill phase)${p.dropClients ? `, then ${p.dropClients} on process 2 in rooms of their own (drop phase)` : ''}; ` +
        `background ${p.bgRate} msg/s in ${p.bgRooms} rooms of 2 (processes 2 and 3); ${p.roomRate} msg/s into the storm rooms from ${p.senders} senders on processes 2 and 3, ` +
        `one per room first, ${p.burst} per room right after the cut; reconnect after 0.5-1.5 s to process 2 or 3 with { pid, offset } (socket.io-client v4's CONNECT); ` +
        `${p.warmSeconds} s of traffic before the cut, ${p.afterSeconds} s after the last client is back`,
      '"missed" = messages of its room a recovered client got on its new connection that had been sent before that connection was up; "lost" = acked to the sender, never received',
      "bare entries read are counted from its stream (entries after the client's offset up to its CONNECT answer): restoreSession XRANGEs the whole tail, whatever rooms it holds, and decodes every entry",
    ];
    for (const k of KINDS)
      for (const ph of phasesOf(k)) {
        const refused = Object.entries(ph.refused).filter(([, v]) => v > 0);
        notes.push(
          `${k} ${ph.phase}: refusals by reason ${refused.length ? refused.map(([r, v]) => `${r} ${v}`).join(', ') : k === 'gateway' ? 'none' : 'n/a (no metrics)'}; ` +
            `attempts ${ph.attempts} (failed ${ph.failedAttempts}${ph.errorSamples.length ? `, e.g. ${ph.errorSamples[0]}` : ''}); ` +
            `room messages ${ph.messages.acked}/${ph.messages.sent} acked (${ph.messages.burst} burst); ` +
            `survivors CPU ${ph.cpu.survivors.total.toFixed(0)} ms + Redis ${ph.cpu.redis.total.toFixed(0)} ms over ${ph.cpu.survivors.seconds.toFixed(1)} s ` +
            `(steady state before: ${(ph.steady.survivors.total / ph.steady.survivors.seconds) | 0} + ${(ph.steady.redis.total / ph.steady.redis.seconds) | 0} ms/s); ` +
            `machine busy ${(ph.machineBusy * 100).toFixed(0)} % of its ${ctx.machine.cores} cores, the benchmark's clients ${ph.benchClientCpuMs.toFixed(0)} ms of it; ` +
            `Redis commands per client back: ${Object.entries(ph.redisCommands)
              .slice(0, 8)
              .map(([c, v]) => `${c} ${(v / Math.max(1, ph.back)).toFixed(1)}`)
              .join(', ')}; ` +
            `metrics ${JSON.stringify(ph.recoveryMetrics)}${ph.metricsMissing.length ? ` (/metrics did not answer: ${ph.metricsMissing.join(', ')})` : ''}`,
        );
      }
    for (const k of KINDS)
      for (const ph of phasesOf(k))
        if (ph.dupSamples.length)
          notes.push(`${k} ${ph.phase}: duplicates, e.g. ${ph.dupSamples.map((x) => JSON.stringify(x)).join('; ')}`);
    for (const k of KINDS) for (const t of runs[k].logTail ?? []) notes.push(`${k}, end of a survivor's output: ${t}`);
    for (const k of KINDS)
      if (runs[k].bg.ackErrorSamples.length)
        notes.push(`${k}: background ack errors, e.g. ${runs[k].bg.ackErrorSamples.map((x) => JSON.stringify(x)).join('; ')}`);
    if (runs.bare.phases.some((x) => x.phase === 'kill' && x.recovered === 0))
      notes.push(
        'bare, kill: Socket.IO persists a session (adapter.persistSession) when the socket disconnects, in the process that held it; a SIGKILLed process never does, so restoreSession finds no session and every client gets a fresh one',
      );
    const data = { params: p, runs: Object.fromEntries(KINDS.map((k) => [k, { ...runs[k], profile: undefined }])) };
    const file = writeBenchJson(ctx, 'recovery-storm', data);
    notes.push(`numbers also in ${path.relative(process.cwd(), file)}`);
    if (process.env.BENCH_PERF === '1' && !p.perf) notes.push('BENCH_PERF=1 ignored: `perf` is not installed');
    if (p.perf)
      notes.push(
        'BENCH_PERF=1: the servers ran with --perf-basic-prof and the kill phase under `perf record`: its wall-clock times are not comparable',
      );
    const profiles = KINDS.map((k) => runs[k].profile).filter(Boolean);
    return {
      title: `Recovery storm: SIGKILL one of 3 processes holding ${p.clients} clients, ${p.bgRate} msg/s elsewhere`,
      params: { ...p },
      rows,
      notes,
      extra: profiles.length ? profiles.join('\n\n') : undefined,
      data,
    };
  },
};
