import { derive, pick, shuffle, uniform } from './rng';

// The fault schedule of a soak, computed up front from the seed: the same seed and duration give
// the same faults (type, target, parameters, planned time). One fault runs at a time; the next
// one is planned 15-30 s after the previous one started, and never before it is over.

export type FaultType =
  | 'gateway-sigkill' // SIGKILL, restarted after the reap bound has passed (a crash, then a new pod)
  | 'gateway-same-name' // SIGKILL, restarted at once under the same POD_NAME (Kubernetes after an OOM kill)
  | 'gateway-sigterm' // graceful shutdown, restarted once it exited (a rolling deploy)
  | 'gateway-pause' // SIGSTOP, SIGCONT after pauseMs
  | 'gateway-double-pause' // SIGSTOP, SIGCONT, SIGSTOP again after gapMs, SIGCONT
  | 'worker-sigkill' // SIGKILL, restarted after downMs
  | 'redis-sigkill'; // SIGKILL, restarted on its AOF after downMs

export interface PlannedFault {
  seq: number;
  type: FaultType;
  target: string;
  /** Planned start, ms after the load started. */
  atMs: number;
  /** How long the process stays dead (kills) before it is started again. */
  downMs?: number;
  /** Length of each SIGSTOP. */
  pauseMs?: number;
  /** Double pause: time between SIGCONT and the second SIGSTOP. */
  gapMs?: number;
  /** Planning estimate of how long the fault takes, restart included. */
  estimateMs: number;
}

export interface PlanOptions {
  seed: number;
  durationMs: number;
  gateways: string[];
  workers: string[];
  /** SIGSTOP length (default 20 s). */
  pauseMs?: number;
  /** Gateway SIGKILL: time before the restart; longer than the reap bound so the dead incarnation is reaped first. */
  killDownMs?: [number, number];
  /** Spacing between fault starts (default 15-30 s). */
  spacingMs?: [number, number];
  /** Redis: time down before the restart (default 1.5-5 s, mostly shorter than the reap bound, so no pod is reaped). */
  redisDownMs?: [number, number];
  /** First Redis kill and the spacing of the next ones (default 35-70 s, then every 120-180 s). */
  redisFirstMs?: [number, number];
  redisEveryMs?: [number, number];
  /** No fault may still run this long before the end of the load. */
  tailMs?: number;
}

const GATEWAY_AND_WORKER: FaultType[] = [
  'gateway-sigkill',
  'gateway-same-name',
  'gateway-sigterm',
  'gateway-pause',
  'gateway-double-pause',
  'worker-sigkill',
];

/** Builds the schedule. Types come from a shuffled bag (each once before any repeats), Redis kills on their own clock. */
export function planFaults(o: PlanOptions): PlannedFault[] {
  const r = derive(o.seed, 'faults');
  const pauseMs = o.pauseMs ?? 20000;
  const killDown = o.killDownMs ?? [7000, 12000];
  const redisDown = o.redisDownMs ?? [1500, 5000];
  const spacing = o.spacingMs ?? [15000, 30000];
  const redisEvery = o.redisEveryMs ?? [120000, 180000];
  const tail = o.tailMs ?? 5000;
  let redisAt = uniform(r, ...(o.redisFirstMs ?? [35000, 70000]));
  let bag: FaultType[] = [];
  const out: PlannedFault[] = [];
  let t = uniform(r, 10000, 20000);
  const build = (type: FaultType, atMs: number): PlannedFault => {
    const base = { seq: out.length + 1, type, atMs: Math.round(atMs) };
    switch (type) {
      case 'gateway-sigkill': {
        const downMs = Math.round(uniform(r, killDown[0], killDown[1]));
        return { ...base, target: pick(r, o.gateways), downMs, estimateMs: downMs + 3000 };
      }
      case 'gateway-same-name': {
        const downMs = Math.round(uniform(r, 0, 1000));
        return { ...base, target: pick(r, o.gateways), downMs, estimateMs: downMs + 3000 };
      }
      case 'gateway-sigterm':
        return { ...base, target: pick(r, o.gateways), estimateMs: 12000 };
      case 'gateway-pause':
        return { ...base, target: pick(r, o.gateways), pauseMs, estimateMs: pauseMs + 500 };
      case 'gateway-double-pause': {
        const gapMs = Math.round(uniform(r, 200, 1000));
        return { ...base, target: pick(r, o.gateways), pauseMs, gapMs, estimateMs: 2 * pauseMs + gapMs + 500 };
      }
      case 'worker-sigkill': {
        const downMs = Math.round(uniform(r, 1000, 5000));
        return { ...base, target: pick(r, o.workers), downMs, estimateMs: downMs + 3000 };
      }
      case 'redis-sigkill': {
        const downMs = Math.round(uniform(r, redisDown[0], redisDown[1]));
        return { ...base, target: 'redis', downMs, estimateMs: downMs + 3000 };
      }
    }
  };
  const end = o.durationMs - tail;
  const REDIS_ROOM_MS = redisDown[1] + 5000; // what a Redis kill needs (down + restart) plus the spacing
  for (;;) {
    let f: PlannedFault | undefined;
    // A Redis kill still due in this run must keep room: a fault that would leave none gives way to it.
    const redisDue = redisAt <= end - REDIS_ROOM_MS;
    if (t >= redisAt && redisDue) f = build('redis-sigkill', t);
    else {
      if (!bag.length) bag = shuffle(r, GATEWAY_AND_WORKER);
      // The first type of the bag that still fits before the end of the load.
      for (let i = 0; i < bag.length; i++) {
        const candidate = build(bag[i], t);
        if (t + candidate.estimateMs <= end && (!redisDue || t + candidate.estimateMs + 2000 + REDIS_ROOM_MS <= end)) {
          f = candidate;
          bag.splice(i, 1);
          break;
        }
      }
      if (!f && redisDue) f = build('redis-sigkill', t);
    }
    if (!f || t + f.estimateMs > end) break;
    if (f.type === 'redis-sigkill') redisAt = t + uniform(r, redisEvery[0], redisEvery[1]);
    out.push(f);
    t += Math.max(uniform(r, spacing[0], spacing[1]), f.estimateMs + 2000);
  }
  return out;
}
