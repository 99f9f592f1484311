import type { ClientRecord, Delivery } from './client';

// The soak's verdicts, computed from plain records (what each client saw, what was acknowledged,
// when the faults ran), so they can be unit-tested on made-up timelines.
//
// Sessions. A client's session is its socket id: a reconnect with `recovered === true` keeps it
// (Socket.IO restores the id), one with `recovered === false` starts a new one. A session is
// `open` when the client was still connected in it at the end, `unrecovered` when it ended with a
// reconnect that was not recovered, `closed` when the harness disconnected the client on purpose,
// `stuck` when the client never came back.
//
// Room deliveries. An acknowledged room message (or a room publish accepted with 202) is
// expected by a session that had joined the room (join acknowledged) before the message was sent:
// - in an `open` session, always: the client was connected or recovered over the send time, so a
//   miss is a loss (a recovery that reported `recovered === true` but skipped it, or a plain loss);
// - in a session that ended, only if the session received something that was written to the
//   stream after it (by offset, or because it was sent after the message's ack): a gap before a
//   later delivery is a loss too (rule 12: offsets are gap-free). What was sent after the last
//   delivery of a session that ended unrecovered is excused: the client was told it lost its
//   session. Those excused deliveries are counted by the cause of the session's end.

/** A Redis stream id ("ms-seq"): the offsets of a single-stream adapter, totally ordered. Other offsets (a sharded adapter's position vector) are opaque: only time orders them. */
export const isStreamId = (o: string | undefined): o is string => o !== undefined && /^\d+-\d+$/.test(o);

/** Compares two stream offsets ("ms-seq"). */
export function cmpOffset(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

export interface RoomSent {
  kind: 'msg' | 'pub';
  /** Message id (ack of `message`) or publish id. */
  key: string;
  room: string;
  sender?: string;
  /** When the client emitted it / the POST started. */
  tSend: number;
  /** When the ack / the 202 came. */
  tAck: number;
}

export interface FaultWindow {
  seq: number;
  type: string;
  target: string;
  startedAt: number;
  endedAt: number;
}

export type SessionEnd = 'open' | 'unrecovered' | 'closed' | 'stuck';

export interface Session {
  rec: ClientRecord;
  sid: string;
  start: number;
  kind: SessionEnd;
  /** When the session lost its connection for good (the disconnect before the unrecovered reconnect, the deliberate close, ...). */
  endAt?: number;
  endReason?: string;
  /** Disconnected intervals that ended with a recovered reconnect. */
  gaps: Array<{ from: number; to: number; reason: string }>;
  rooms: Map<string, number>;
  delivered: Map<string, Delivery[]>;
  maxOffset?: string;
  /** Latest send time of a ledger item this session received. */
  maxSentAtDelivered: number;
}

/** Splits a client's history into sessions (see the header). */
export function sessionsOf(rec: ClientRecord, sentByKey: Map<string, RoomSent>): Session[] {
  const sids: string[] = [];
  const firstAt = new Map<string, number>();
  for (const k of rec.connects)
    if (!firstAt.has(k.sid)) {
      sids.push(k.sid);
      firstAt.set(k.sid, k.at);
    }
  return sids.map((sid, i) => {
    const start = firstAt.get(sid)!;
    const next = i + 1 < sids.length ? firstAt.get(sids[i + 1])! : undefined;
    const connects = rec.connects.filter((k) => k.sid === sid);
    const lastConnect = connects[connects.length - 1].at;
    const endDisc = rec.disconnects.find((d) => d.at >= lastConnect && (next === undefined || d.at <= next));
    let kind: SessionEnd;
    if (next !== undefined) kind = 'unrecovered';
    else if (rec.closedAt !== undefined && rec.closedAt >= start) kind = 'closed';
    else if (rec.connectedAtEnd) kind = 'open';
    else kind = 'stuck';
    const gaps: Session['gaps'] = [];
    for (let j = 1; j < connects.length; j++) {
      const d = [...rec.disconnects].reverse().find((x) => x.at <= connects[j].at && x.at >= connects[j - 1].at);
      if (d) gaps.push({ from: d.at, to: connects[j].at, reason: d.reason });
    }
    const rooms = new Map<string, number>();
    for (const j of rec.joins) if (j.sid === sid && !rooms.has(j.room)) rooms.set(j.room, j.at);
    const delivered = new Map<string, Delivery[]>();
    let maxOffset = rec.maxOffset[sid];
    let maxSentAtDelivered = -Infinity;
    for (const d of rec.deliveries) {
      if (d.sid !== sid) continue;
      const list = delivered.get(d.key);
      if (list) list.push(d);
      else delivered.set(d.key, [d]);
      if (isStreamId(d.offset) && (!maxOffset || cmpOffset(d.offset, maxOffset) > 0)) maxOffset = d.offset;
      const s = sentByKey.get(d.key);
      if (s && s.tSend > maxSentAtDelivered) maxSentAtDelivered = s.tSend;
    }
    const ended = kind !== 'open';
    return {
      rec,
      sid,
      start,
      kind,
      endAt: ended ? (endDisc?.at ?? next ?? rec.closedAt ?? lastConnect) : undefined,
      endReason: ended ? (endDisc?.reason ?? kind) : undefined,
      gaps,
      rooms,
      delivered,
      maxOffset,
      maxSentAtDelivered,
    };
  });
}

/** What the whole cluster saw of each ledger item: its stream offset and first arrival anywhere. */
export interface Seen {
  offset: Map<string, string>;
  firstAt: Map<string, number>;
}

export function seenOf(records: ClientRecord[]): Seen {
  const offset = new Map<string, string>();
  const firstAt = new Map<string, number>();
  for (const r of records)
    for (const d of r.deliveries) {
      if (isStreamId(d.offset)) {
        const o = offset.get(d.key);
        if (!o || cmpOffset(d.offset, o) < 0) offset.set(d.key, d.offset);
      }
      if (!firstAt.has(d.key) || d.at < firstAt.get(d.key)!) firstAt.set(d.key, d.at);
    }
  return { offset, firstAt };
}

/** Whether `s` was surely in the stream before something `session` received (see the header). */
export function precedesLastDelivery(s: RoomSent, session: Session, seen: Seen): boolean {
  const o = seen.offset.get(s.key);
  if (o && session.maxOffset && cmpOffset(o, session.maxOffset) < 0) return true;
  // In the stream by: its ack (a message), its first arrival anywhere (a publish, written by a worker).
  const inStreamBy = s.kind === 'msg' ? s.tAck : (seen.firstAt.get(s.key) ?? Infinity);
  return inStreamBy < session.maxSentAtDelivered;
}

export type Expectation = 'expected' | 'not-member' | 'after-end' | 'excused';

export function expectation(s: RoomSent, session: Session, seen: Seen): Expectation {
  const joinedAt = session.rooms.get(s.room);
  if (joinedAt === undefined || joinedAt >= s.tSend) return 'not-member';
  if (session.kind === 'open') return 'expected';
  if (session.endAt !== undefined && s.tSend >= session.endAt) return 'after-end';
  return precedesLastDelivery(s, session, seen) ? 'expected' : 'excused';
}

export interface LostDelivery {
  client: string;
  userId: string;
  transport: string;
  sid: string;
  session: SessionEnd;
  kind: 'msg' | 'pub';
  key: string;
  room: string;
  sender?: string;
  tSend: number;
  tAck: number;
  /**
   * `recovered-gap`: sent while the client was away, then it came back `recovered === true` without it;
   * `connected`: sent while the client was connected (as far as the client knew: a paused gateway looks connected);
   * `gap-in-ended-session`: in a session that ended, a later entry arrived and this one never did.
   */
  when: 'recovered-gap' | 'connected' | 'gap-in-ended-session';
  /** The gateway (HAProxy cookie) the client was on when it was sent. */
  server?: string;
  /** Recovered reconnects of the session after the send time. */
  recoveredAfter: Array<{ at: number; server?: string }>;
  /** The session's last recovered reconnect before the send time: why it had dropped, from which gateway to which. */
  reconnectBefore?: { at: number; reason: string; from?: string; to?: string };
  faults: string[];
}

export interface Duplicate {
  client: string;
  userId: string;
  sid: string;
  kind: 'msg' | 'pub';
  key: string;
  room: string;
  count: number;
  at: number[];
  offsets: Array<string | undefined>;
  faults: string[];
}

export interface UnrecoveredReconnect {
  client: string;
  userId: string;
  transport: string;
  disconnectedAt: number;
  reason: string;
  reconnectedAt: number;
  from?: string;
  to?: string;
  /** Engine connections opened meanwhile whose CONNECT never completed (a handshake, i.e. a recovery attempt, cut). */
  interruptedHandshakes: number;
  refusals: string[];
  faults: string[];
  cause: string;
}

/** Faults whose window (plus `slackMs` after it) meets [from, to]. */
export function faultsAround(faults: FaultWindow[], from: number, to: number, slackMs = 3000): string[] {
  return faults.filter((f) => f.startedAt <= to && f.endedAt + slackMs >= from).map((f) => `#${f.seq} ${f.type} ${f.target}`);
}

function serverAt(rec: ClientRecord, t: number): string | undefined {
  let s: string | undefined;
  for (const k of rec.connects) if (k.at <= t) s = k.server;
  return s;
}

export interface RoomVerdict {
  sentMessages: number;
  sentPublishes: number;
  expected: number;
  delivered: number;
  lost: LostDelivery[];
  excused: number;
  excusedBySessionEnd: Record<string, number>;
  duplicates: Duplicate[];
  sessions: Record<SessionEnd, number>;
  recoveredReconnects: number;
  unrecovered: UnrecoveredReconnect[];
  /** Deliveries of ids that are in no ledger (their ack failed or timed out, yet they were sent). */
  unackedDelivered: number;
}

export function roomVerdict(records: ClientRecord[], sent: RoomSent[], faults: FaultWindow[], recoveryWindowMs = 120000): RoomVerdict {
  const sentByKey = new Map(sent.map((s) => [s.key, s]));
  const byRoom = new Map<string, RoomSent[]>();
  for (const s of sent) {
    const l = byRoom.get(s.room);
    if (l) l.push(s);
    else byRoom.set(s.room, [s]);
  }
  const seen = seenOf(records);
  const v: RoomVerdict = {
    sentMessages: sent.filter((s) => s.kind === 'msg').length,
    sentPublishes: sent.filter((s) => s.kind === 'pub').length,
    expected: 0,
    delivered: 0,
    lost: [],
    excused: 0,
    excusedBySessionEnd: {},
    duplicates: [],
    sessions: { open: 0, unrecovered: 0, closed: 0, stuck: 0 },
    recoveredReconnects: 0,
    unrecovered: [],
    unackedDelivered: 0,
  };
  for (const rec of records) {
    const sessions = sessionsOf(rec, sentByKey);
    for (const d of rec.deliveries) if (!sentByKey.has(d.key)) v.unackedDelivered++;
    for (const [i, ss] of sessions.entries()) {
      v.sessions[ss.kind]++;
      v.recoveredReconnects += ss.gaps.length;
      for (const [room] of ss.rooms) {
        for (const s of byRoom.get(room) ?? []) {
          const e = expectation(s, ss, seen);
          const was = ss.delivered.has(s.key);
          if (e === 'excused' && !was) {
            v.excused++;
            const why = `${ss.kind}: ${ss.endReason}`;
            v.excusedBySessionEnd[why] = (v.excusedBySessionEnd[why] ?? 0) + 1;
          }
          if (e !== 'expected') continue;
          v.expected++;
          if (was) {
            v.delivered++;
            continue;
          }
          const gap = ss.gaps.find((g) => g.from <= s.tSend && s.tSend <= g.to);
          const before = [...ss.gaps].reverse().find((g) => g.to <= s.tSend);
          v.lost.push({
            client: rec.label,
            userId: rec.userId,
            transport: rec.transport,
            sid: ss.sid,
            session: ss.kind,
            kind: s.kind,
            key: s.key,
            room: s.room,
            sender: s.sender,
            tSend: s.tSend,
            tAck: s.tAck,
            when: gap ? 'recovered-gap' : ss.kind !== 'open' ? 'gap-in-ended-session' : 'connected',
            server: serverAt(rec, s.tSend),
            recoveredAfter: ss.gaps.filter((g) => g.to >= s.tSend).map((g) => ({ at: g.to, server: serverAt(rec, g.to) })),
            reconnectBefore: before && {
              at: before.to,
              reason: before.reason,
              from: serverAt(rec, before.from),
              to: serverAt(rec, before.to),
            },
            faults: faultsAround(faults, s.tSend - 45000, s.tAck),
          });
        }
      }
      for (const [key, list] of ss.delivered) {
        if (list.length < 2) continue;
        v.duplicates.push({
          client: rec.label,
          userId: rec.userId,
          sid: ss.sid,
          kind: list[0].kind,
          key,
          room: list[0].room,
          count: list.length,
          at: list.map((d) => d.at),
          offsets: list.map((d) => d.offset),
          faults: faultsAround(faults, list[0].at - 10000, list[list.length - 1].at),
        });
      }
      if (i > 0) v.unrecovered.push(unrecoveredReconnect(rec, sessions[i - 1], ss, faults, recoveryWindowMs));
    }
  }
  return v;
}

function unrecoveredReconnect(
  rec: ClientRecord,
  prev: Session,
  next: Session,
  faults: FaultWindow[],
  windowMs: number,
): UnrecoveredReconnect {
  const from = prev.endAt ?? prev.start;
  const to = next.start;
  const opens = rec.engineOpens.filter((t) => t > from && t <= to).length;
  const errors = rec.connectErrors.filter((e) => e.at > from && e.at <= to);
  const refusals = errors.filter((e) => e.refused).map((e) => e.message);
  // Every open engine connection but the last one ended without a CONNECT (or with a refusal).
  const interrupted = Math.max(0, opens - 1 - refusals.length);
  const near = faultsAround(faults, from - 2000, to);
  let cause: string;
  if (interrupted > 0) cause = 'a reconnect attempt was cut mid-handshake';
  else if (refusals.length) cause = `refused (${[...new Set(refusals)].join(', ')}) before`;
  else if (faults.some((f) => f.type === 'redis-sigkill' && f.startedAt <= prev.start && prev.start <= f.endedAt + 3000))
    cause = 'its session began during a Redis outage';
  else if (prev.endReason === 'io server disconnect') cause = 'server-side disconnect';
  else if (to - from > windowMs) cause = 'away longer than the recovery window';
  else cause = 'session not restored';
  const kinds = [...new Set(faults.filter((f) => near.includes(`#${f.seq} ${f.type} ${f.target}`)).map((f) => f.type))];
  return {
    client: rec.label,
    userId: rec.userId,
    transport: rec.transport,
    disconnectedAt: from,
    reason: prev.endReason ?? '?',
    reconnectedAt: to,
    from: serverAt(rec, from),
    to: rec.connects.find((k) => k.sid === next.sid)?.server,
    interruptedHandshakes: interrupted,
    refusals,
    faults: near,
    cause: `${kinds.length ? kinds.join('+') : 'no fault'}: ${cause}`,
  };
}

// ---------------------------------------------------------------- presence and room membership

export interface PresenceVerdict {
  checked: number;
  ghosts: string[];
  wrongOffline: string[];
  /** Users whose truth changed within the bound before the check (not judged). */
  ambiguous: string[];
  unknown: string[];
}

/** `status` from get-presence; `connected` the truth (a socket of the user connected); `recent` users not judged. */
export function presenceVerdict(
  users: string[],
  status: Map<string, string>,
  connected: Set<string>,
  recent: Set<string>,
): PresenceVerdict {
  const v: PresenceVerdict = { checked: 0, ghosts: [], wrongOffline: [], ambiguous: [], unknown: [] };
  for (const u of users) {
    if (recent.has(u)) {
      v.ambiguous.push(u);
      continue;
    }
    const s = status.get(u);
    if (s === undefined) {
      v.unknown.push(u);
      continue;
    }
    v.checked++;
    if (s === 'online' && !connected.has(u)) v.ghosts.push(u);
    if (s !== 'online' && connected.has(u)) v.wrongOffline.push(u);
  }
  return v;
}

export interface MembershipVerdict {
  rooms: number;
  /** Listed though none of the user's sockets is in the room. */
  ghostUsers: Array<{ room: string; userId: string; sockets: number }>;
  /** A present user listed with more sockets than it has in the room. */
  ghostSockets: Array<{ room: string; userId: string; listed: number; actual: number }>;
  /** In the room (joined, connected) but not listed. */
  missing: Array<{ room: string; userId: string }>;
  ambiguous: number;
  failedQueries: string[];
}

export function membershipVerdict(
  listed: Map<string, Array<{ userId: string; sockets: number }> | undefined>,
  truth: Map<string, Map<string, number>>,
  recent: Set<string>,
): MembershipVerdict {
  const v: MembershipVerdict = { rooms: 0, ghostUsers: [], ghostSockets: [], missing: [], ambiguous: 0, failedQueries: [] };
  for (const [room, members] of listed) {
    if (!members) {
      v.failedQueries.push(room);
      continue;
    }
    v.rooms++;
    const want = truth.get(room) ?? new Map<string, number>();
    for (const m of members) {
      if (recent.has(m.userId)) {
        v.ambiguous++;
        continue;
      }
      const actual = want.get(m.userId) ?? 0;
      if (actual === 0) v.ghostUsers.push({ room, userId: m.userId, sockets: m.sockets });
      else if (m.sockets > actual) v.ghostSockets.push({ room, userId: m.userId, listed: m.sockets, actual });
    }
    for (const [u] of want) if (!recent.has(u) && !members.some((m) => m.userId === u)) v.missing.push({ room, userId: u });
  }
  return v;
}

// ---------------------------------------------------------------- direct messages and user publishes

export interface DirectSent {
  id: string;
  from: string;
  to: string;
  tSend: number;
  tAck: number;
}

export interface NoticeSent {
  pid: string;
  to: string;
  tSend: number;
  tAck: number;
}

export interface InboxRead {
  ids: string[];
  pids: string[];
  /** The replay ended (`more: false`) before the timeout. */
  complete: boolean;
}

export interface InboxVerdict {
  directAcked: number;
  noticesAccepted: number;
  /** Acked, neither in the inbox read back at the end nor delivered live. */
  lostDirect: DirectSent[];
  lostNotices: NoticeSent[];
  /** Delivered live but missing from the inbox read (inbox retention or a failed append). */
  liveOnlyDirect: number;
  liveOnlyNotices: number;
  /** The same id twice in one inbox read. */
  inboxDuplicates: Array<{ userId: string; id: string; count: number }>;
  /** Live deliveries of one id more than once to one client (at-least-once, by contract). */
  liveDuplicates: number;
  incompleteReads: string[];
}

export function inboxVerdict(
  directs: DirectSent[],
  notices: NoticeSent[],
  reads: Map<string, InboxRead>,
  records: ClientRecord[],
): InboxVerdict {
  const liveIds = new Map<string, Set<string>>();
  const livePids = new Map<string, Set<string>>();
  let liveDuplicates = 0;
  for (const r of records) {
    const ids = liveIds.get(r.userId) ?? new Set<string>();
    const pids = livePids.get(r.userId) ?? new Set<string>();
    const mine = new Map<string, number>();
    for (const d of r.directs) {
      ids.add(d.id);
      if (d.via === 'live') mine.set(`d:${d.id}`, (mine.get(`d:${d.id}`) ?? 0) + 1);
    }
    for (const n of r.notices) {
      pids.add(n.pid);
      if (n.via === 'live') mine.set(`n:${n.pid}`, (mine.get(`n:${n.pid}`) ?? 0) + 1);
    }
    for (const c of mine.values()) if (c > 1) liveDuplicates += c - 1;
    liveIds.set(r.userId, ids);
    livePids.set(r.userId, pids);
  }
  const v: InboxVerdict = {
    directAcked: directs.length,
    noticesAccepted: notices.length,
    lostDirect: [],
    lostNotices: [],
    liveOnlyDirect: 0,
    liveOnlyNotices: 0,
    inboxDuplicates: [],
    liveDuplicates,
    incompleteReads: [...reads].filter(([, r]) => !r.complete).map(([u]) => u),
  };
  const inboxIds = new Map([...reads].map(([u, r]) => [u, new Set(r.ids)]));
  const inboxPids = new Map([...reads].map(([u, r]) => [u, new Set(r.pids)]));
  for (const d of directs) {
    if (inboxIds.get(d.to)?.has(d.id)) continue;
    if (liveIds.get(d.to)?.has(d.id)) v.liveOnlyDirect++;
    else v.lostDirect.push(d);
  }
  for (const n of notices) {
    if (inboxPids.get(n.to)?.has(n.pid)) continue;
    if (livePids.get(n.to)?.has(n.pid)) v.liveOnlyNotices++;
    else v.lostNotices.push(n);
  }
  for (const [u, r] of reads) {
    const counts = new Map<string, number>();
    for (const id of [...r.ids, ...r.pids.map((p) => `publish:${p}`)]) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const [id, count] of counts) if (count > 1) v.inboxDuplicates.push({ userId: u, id, count });
  }
  return v;
}

// ---------------------------------------------------------------- explanations

export interface SessionStory {
  client: string;
  sid: string;
  session: SessionEnd;
  start: number;
  endAt?: number;
  endReason?: string;
  /** The gateway (HAProxy cookie) the session was on when it ended. */
  endServer?: string;
  /** Faults around the end of the session (its last disconnect). */
  faultsAtEnd: string[];
  /** Same-name restarts (SIGKILL + restart under the same POD_NAME) of the gateway it was on, at its end. */
  endedBySameNameRestart: string[];
  /** Its recovered reconnects: why it had dropped, from which gateway to which, the faults around. */
  recoveries: Array<{ at: number; reason: string; from?: string; to?: string; faults: string[] }>;
}

const cookieToPod = (s?: string) => (s && /^gw\d+$/.test(s) ? `gateway-${s.slice(2)}` : s);

/** The history of a user's sessions, to explain a ghost or a wrong offline. */
export function explainUser(userId: string, records: ClientRecord[], faults: FaultWindow[]): SessionStory[] {
  const out: SessionStory[] = [];
  for (const rec of records.filter((r) => r.userId === userId)) {
    for (const ss of sessionsOf(rec, new Map())) {
      const endServer = ss.endAt !== undefined ? serverAt(rec, ss.endAt) : undefined;
      out.push({
        client: rec.label,
        sid: ss.sid,
        session: ss.kind,
        start: ss.start,
        endAt: ss.endAt,
        endReason: ss.endReason,
        endServer,
        faultsAtEnd: ss.endAt !== undefined ? faultsAround(faults, ss.endAt - 2000, ss.endAt + 2000, 2000) : [],
        endedBySameNameRestart:
          ss.endAt === undefined
            ? []
            : faults
                .filter(
                  (f) => f.type === 'gateway-same-name' && f.target === cookieToPod(endServer) && Math.abs(f.startedAt - ss.endAt!) < 3000,
                )
                .map((f) => `#${f.seq} ${f.target}`),
        recoveries: ss.gaps.map((g) => ({
          at: g.to,
          reason: g.reason,
          from: serverAt(rec, g.from),
          to: serverAt(rec, g.to),
          faults: faultsAround(faults, g.from - 2000, g.to),
        })),
      });
    }
  }
  return out;
}

/** A short label for a presence or membership ghost: how the sessions that ended, ended. */
export function ghostCause(stories: SessionStory[]): string {
  const labels = new Set<string>();
  for (const e of stories) {
    if (e.session === 'open') continue;
    if (e.faultsAtEnd.some((f) => f.includes('redis-sigkill'))) labels.add('a session ended during a Redis outage');
    if (e.endedBySameNameRestart.length) labels.add('a session ended when its gateway was SIGKILLed and restarted under the same name');
    if (e.faultsAtEnd.some((f) => f.includes('gateway-sigterm'))) labels.add('a session ended during a graceful shutdown');
    if (e.faultsAtEnd.some((f) => f.includes('pause'))) labels.add('a session ended around a pause');
  }
  return labels.size ? [...labels].join('; ') : 'unexplained';
}

/** A short description of a user shown offline while connected: the recovered reconnects of its open session. */
export function offlineStory(stories: SessionStory[]): string {
  const open = stories.filter((e) => e.session === 'open');
  const rec = open.flatMap((e) => e.recoveries).slice(-3);
  if (!rec.length) return 'no reconnect in its current session';
  return `recovered ${rec.map((g) => `${g.from ?? '?'}->${g.to ?? '?'} after ${g.reason}${g.faults.length ? ` [${g.faults.join(', ')}]` : ''}`).join(', then ')}`;
}
