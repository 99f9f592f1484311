import type { Socket } from 'socket.io-client';
import type { Cluster } from '../e2e/cluster';
import { publish } from '../e2e/clients';
import type { SoakClient } from './client';
import { derive, expoMs, intIn, pick, Rng, sample, uniform } from './rng';
import type { DirectSent, NoticeSent, RoomSent } from './verdicts';

// The load of the soak, every choice drawn from seeded streams: acked room messages from resident
// clients, direct messages (some to users who are away), backend publishes through the balancer
// (room and user targets), and users who come and go (each visit a fresh connection that joins
// a few rooms and leaves on purpose). Every acknowledged item goes to the ledger.

export interface Ledger {
  room: RoomSent[];
  directs: DirectSent[];
  notices: NoticeSent[];
  failures: Record<string, number>;
  skipped: Record<string, number>;
}

export interface LoadOptions {
  seed: number;
  rooms: string[];
  roomRate: number;
  directRate: number;
  publishRate: number;
  ackTimeoutMs: number;
  maxInflight: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Load {
  ledger: Ledger;
  inflight(): number;
  /** Stops every loop and waits (bounded) for what is in flight. */
  stop(): Promise<void>;
}

const count = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

/** emitWithAck with its own timeout (the soak waits longer than the e2e ask(): a paused gateway answers once resumed); never rejects. */
export async function askWithin(
  socket: Socket,
  timeoutMs: number,
  event: string,
  ...args: unknown[]
): Promise<{ ok: boolean; error?: { code: string; message: string }; [k: string]: unknown }> {
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, ...args);
  } catch (e) {
    return { ok: false, error: { code: 'client', message: (e as Error).message } };
  }
}

/** A Poisson loop of `rate` per second calling `fire` (not awaited; bounded by maxInflight). */
function poisson(rate: number, r: Rng, stopped: () => boolean, fire: () => void): Promise<void> {
  return (async () => {
    if (rate <= 0) return;
    while (!stopped()) {
      await sleep(expoMs(r, rate));
      if (!stopped()) fire();
    }
  })();
}

export function startLoad(c: Cluster, o: LoadOptions, residents: SoakClient[], allUsers: string[]): Load {
  const ledger: Ledger = { room: [], directs: [], notices: [], failures: {}, skipped: {} };
  let stopped = false;
  let inflight = 0;
  let n = 0;
  const pending = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    inflight++;
    const q = p.finally(() => {
      inflight--;
      pending.delete(q);
    });
    pending.add(q);
  };
  const busy = (what: string) => {
    if (inflight < o.maxInflight) return false;
    count(ledger.skipped, `${what}: too many in flight`);
    return true;
  };
  const rRoom = derive(o.seed, 'room-traffic');
  const rDirect = derive(o.seed, 'direct-traffic');
  const rPub = derive(o.seed, 'publish-traffic');

  const roomLoop = poisson(
    o.roomRate,
    rRoom,
    () => stopped,
    () => {
      const s = pick(rRoom, residents);
      const room = pick(rRoom, s.rec.desiredRooms);
      if (!s.socket.connected) return void count(ledger.skipped, 'room message: sender disconnected');
      if (busy('room message')) return;
      const seq = n++;
      const tSend = Date.now();
      track(
        (async () => {
          const a = await askWithin(s.socket, o.ackTimeoutMs, 'message', { roomId: room, text: `m${seq}`, data: { seq } });
          if (a.ok) ledger.room.push({ kind: 'msg', key: a.id as string, room, sender: s.rec.label, tSend, tAck: Date.now() });
          else count(ledger.failures, `room message: ${a.error?.code}`);
        })(),
      );
    },
  );

  const directLoop = poisson(
    o.directRate,
    rDirect,
    () => stopped,
    () => {
      const s = pick(rDirect, residents);
      let to = pick(rDirect, allUsers);
      if (to === s.rec.userId) to = pick(rDirect, allUsers);
      if (!s.socket.connected || to === s.rec.userId) return void count(ledger.skipped, 'direct message: sender disconnected');
      if (busy('direct message')) return;
      const seq = n++;
      const tSend = Date.now();
      track(
        (async () => {
          const a = await askWithin(s.socket, o.ackTimeoutMs, 'direct-message', { toUserId: to, text: `d${seq}`, data: { seq } });
          if (a.ok) ledger.directs.push({ id: a.id as string, from: s.rec.userId, to, tSend, tAck: Date.now() });
          else count(ledger.failures, `direct message: ${a.error?.code}`);
        })(),
      );
    },
  );

  const publishLoop = poisson(
    o.publishRate,
    rPub,
    () => stopped,
    () => {
      if (busy('publish')) return;
      const seq = n++;
      const pid = `soak-${o.seed}-p${seq}`;
      const toUser = rPub() < 0.5;
      const room = pick(rPub, o.rooms);
      const to = pick(rPub, allUsers);
      const tSend = Date.now();
      track(
        (async () => {
          const body = toUser
            ? { userId: to, event: 'soak-notice', data: { pid }, id: pid }
            : { room, event: 'soak-news', data: { pid, room }, id: pid };
          const res = await publish(c, body);
          if (res.status === 202) {
            if (toUser) ledger.notices.push({ pid, to, tSend, tAck: Date.now() });
            else ledger.room.push({ kind: 'pub', key: pid, room, tSend, tAck: Date.now() });
          } else count(ledger.failures, `publish: HTTP ${res.status || 'connection failed'}`);
        })(),
      );
    },
  );

  return {
    ledger,
    inflight: () => inflight,
    async stop() {
      stopped = true;
      await Promise.all([roomLoop, directLoop, publishLoop]);
      const end = Date.now() + o.ackTimeoutMs + 5000;
      while (pending.size && Date.now() < end) await sleep(100);
    },
  };
}

export interface ChurnOptions {
  seed: number;
  rooms: string[];
  onlineMs: [number, number];
  offlineMs: [number, number];
}

export interface Churn {
  /** Every connection made so far (one per visit). */
  clients: SoakClient[];
  visits(): number;
  stop(): Promise<void>;
}

/**
 * Users who come and go: `users[i]` starts with `first[i]` (already connected), stays a random
 * time, leaves on purpose, stays away a random time, comes back with a fresh connection, and so on
 * until stop(), which leaves each user as it is (online or away).
 */
export function startChurn(
  o: ChurnOptions,
  first: SoakClient[],
  connect: (userId: string, rooms: string[], visit: number) => SoakClient,
): Churn {
  const clients: SoakClient[] = [...first];
  let stopped = false;
  let visits = 0;
  const wait = async (ms: number) => {
    const end = Date.now() + ms;
    while (!stopped && Date.now() < end) await sleep(Math.min(250, end - Date.now()));
  };
  const loops = first.map(async (cl0, i) => {
    const r = derive(o.seed, `churn-${i}`);
    let cl = cl0;
    await wait(uniform(r, 0, o.onlineMs[1]));
    for (let visit = 1; !stopped; visit++) {
      cl.close();
      await wait(uniform(r, o.offlineMs[0], o.offlineMs[1]));
      if (stopped) break;
      cl = connect(cl0.rec.userId, sample(r, o.rooms, intIn(r, 1, 2)), visit);
      clients.push(cl);
      visits++;
      await wait(uniform(r, o.onlineMs[0], o.onlineMs[1]));
    }
  });
  return {
    clients,
    visits: () => visits,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}
