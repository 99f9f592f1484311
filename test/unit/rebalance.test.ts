import type { PodInfo } from '../../services/core/pods/registry';
import {
  fairShare,
  MIN_SLACK,
  PAUSE_PERIODS,
  RebalancePlanner,
  STALL_WINDOW,
  steeringTargets,
  type Share,
} from '../../services/gateway/rebalance-plan';
import { chooseSpread, type Candidate } from '../../services/gateway/shed-choice';

// The arithmetic of rebalancing (services/gateway/rebalance-plan.ts) and the choice of the
// connections it moves (shed-choice.ts), without servers.

const NOW = 1_000_000;
const HB = 5000;

function pod(id: string, connections: number, extra: Partial<PodInfo> = {}): PodInfo {
  return { id, connections, lastHeartbeat: NOW - 1000, ready: true, ...extra };
}

function share(own: number, others: number[]): Share {
  return fairShare({ self: 'a', own, pods: others.map((n, i) => pod(`p${i}`, n)), now: NOW, heartbeatMs: HB });
}

/** A seeded random source (mulberry32). */
function seeded(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), 1 | t);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

describe('fairShare: which pods share the load', () => {
  test('this pod counts with its live count; reaped, silent (3 heartbeats), not-ready pods do not count; draining is flagged', () => {
    const s = fairShare({
      self: 'a',
      own: 90,
      pods: [
        pod('a', 10), // this pod's own (older) heartbeat: replaced by the live count
        pod('b', 60),
        pod('c', 0),
        pod('dead', 500, { lastHeartbeat: NOW - 3 * HB - 1 }),
        pod('reaped', 500, { reaped: true }),
        pod('starting', 0, { ready: false }),
      ],
      now: NOW,
      heartbeatMs: HB,
    });
    expect(s.counts.map((c) => [c.id, c.connections])).toEqual([
      ['a', 90],
      ['b', 60],
      ['c', 0],
    ]);
    expect(s.fair).toBe(50);
    expect(s.draining).toBe(false);
    const d = fairShare({ self: 'a', own: 10, pods: [pod('b', 30, { draining: true })], now: NOW, heartbeatMs: HB });
    expect(d.draining).toBe(true);
    expect(d.counts).toHaveLength(1);
  });

  test('a pod of an older build (no ready field) counts; a garbage count counts as 0', () => {
    const s = fairShare({
      self: 'a',
      own: 10,
      pods: [
        { id: 'old', connections: 20, lastHeartbeat: NOW },
        { id: 'bad', connections: 'x' as unknown as number, lastHeartbeat: NOW },
      ],
      now: NOW,
      heartbeatMs: HB,
    });
    expect(s.counts.map((c) => c.connections)).toEqual([10, 20, 0]);
  });
});

describe('RebalancePlanner: whether and how much to shed', () => {
  /** A planner past its confirmation: its first update called for a start already. */
  const planner = () => {
    const p = new RebalancePlanner({ tolerance: 0.2, ratePercent: 1 });
    (p as unknown as { wanted: boolean }).wanted = true;
    return p;
  };

  test('a start needs two views in a row (the first may hold counts a heartbeat old); any other answer in between resets it', () => {
    const p = new RebalancePlanner({ tolerance: 0.2, ratePercent: 1 });
    expect(p.update(share(150, [150, 0]), 150)).toMatchObject({ shed: false, reason: 'confirming' });
    expect(p.update(share(150, [150, 0]), 150)).toMatchObject({ shed: true, why: 'above' });
    const q = new RebalancePlanner({ tolerance: 0.2, ratePercent: 1 });
    expect(q.update(share(150, [150, 0]), 150)).toMatchObject({ reason: 'confirming' });
    expect(q.update(share(100, [100, 100]), 100)).toMatchObject({ reason: 'balanced' });
    expect(q.update(share(150, [150, 0]), 150)).toMatchObject({ reason: 'confirming' });
    expect(q.update(undefined, 150)).toMatchObject({ reason: 'unknown' });
    expect(q.update(share(150, [150, 0]), 150)).toMatchObject({ reason: 'confirming' });
  });

  test('2 -> 3 pods (150, 150, 0): the full pods shed down to the fair share', () => {
    expect(planner().update(share(150, [150, 0]), 150)).toEqual({ shed: true, fair: 100, pods: 3, excess: 50, why: 'above' });
  });

  test('inside the band (110, 110, 80 around 100): nobody moves', () => {
    expect(planner().update(share(110, [110, 80]), 110)).toMatchObject({ shed: false, reason: 'balanced', fair: 100 });
  });

  test('a pod below the band makes the pods above the fair share shed, even inside their own band (115, 115, 70)', () => {
    expect(planner().update(share(115, [115, 70]), 115)).toMatchObject({ shed: true, excess: 15, why: 'under' });
    // ... but not a pod at or below the fair share
    expect(planner().update(share(100, [130, 70]), 100)).toMatchObject({ shed: false, reason: 'balanced' });
  });

  test('hysteresis: once shedding it goes on down to the fair share, then stops', () => {
    const p = planner();
    expect(p.update(share(130, [100, 70]), 130).shed).toBe(true);
    expect(p.update(share(105, [100, 95]), 105)).toMatchObject({ shed: true, excess: 5, why: 'continuing' });
    expect(p.update(share(100, [100, 100]), 100)).toMatchObject({ shed: false, reason: 'balanced' });
    // and a fresh start needs the band to be left again
    expect(p.update(share(105, [100, 95]), 105)).toMatchObject({ shed: false, reason: 'balanced' });
  });

  test(`differences of ${MIN_SLACK} connections or fewer never move anyone`, () => {
    expect(planner().update(share(3, [0, 0]), 3)).toMatchObject({ shed: false, reason: 'balanced' });
    expect(planner().update(share(5, [0, 0]), 5)).toMatchObject({ shed: true, excess: 3 });
  });

  test('holds when alone, while a pod drains, while this pod drains, and when the registry could not be read', () => {
    expect(planner().update(share(500, []), 500)).toMatchObject({ shed: false, reason: 'alone' });
    const draining = fairShare({ self: 'a', own: 150, pods: [pod('b', 150, { draining: true }), pod('c', 0)], now: NOW, heartbeatMs: HB });
    expect(planner().update(draining, 150)).toMatchObject({ shed: false, reason: 'pod_draining' });
    expect(planner().update(share(150, [0]), 150, true)).toMatchObject({ shed: false, reason: 'self_draining' });
    expect(planner().update(undefined, 150)).toMatchObject({ shed: false, reason: 'unknown' });
  });

  test(`moves that do not narrow the spread (${STALL_WINDOW}+ moved) pause the rebalancing for ${PAUSE_PERIODS} periods`, () => {
    const p = planner();
    // a pod that is ready but gets no traffic: whatever is moved comes back, the counts never change
    const stuck = () => {
      const plan = p.update(share(150, [150, 0]), 150);
      if (plan.shed) p.shed(5);
      return plan;
    };
    for (let i = 0; i < STALL_WINDOW / 5; i++) expect(stuck().shed).toBe(true);
    expect(stuck()).toMatchObject({ shed: false, reason: 'stalled' });
    for (let i = 0; i < PAUSE_PERIODS; i++) expect(stuck()).toMatchObject({ shed: false, reason: 'stalled' });
    expect(stuck()).toMatchObject({ shed: false, reason: 'confirming' });
    expect(stuck().shed).toBe(true);
    // slow but real progress never pauses: both full pods move 3 per period, round-robin lands 1 of each 3 on each pod
    const q = planner();
    const c = [150, 150, 0];
    while (c[0] > 100) {
      expect(q.update(share(c[0], [c[1], c[2]]), c[0]).shed).toBe(true);
      q.shed(3);
      c[0] -= 1;
      c[1] -= 1;
      c[2] += 2;
    }
    expect(q.update(share(c[0], [c[1], c[2]]), c[0])).toMatchObject({ shed: false, reason: 'balanced' });
  });

  test('take(): at most REBALANCE_RATE_PERCENT of the connections per second, at least one, never beyond the excess', () => {
    const p = planner();
    p.update(share(150, [150, 0]), 150);
    let n = 0;
    for (let t = 0; t < 40; t++) n += p.take(150, 250); // 10 s in 250 ms ticks
    expect(n).toBeGreaterThanOrEqual(14);
    expect(n).toBeLessThanOrEqual(16);
    // a small pod still moves one per second
    const small = planner();
    expect(small.update(share(10, [0, 0, 0, 0]), 10).shed).toBe(true);
    let k = 0;
    for (let t = 0; t < 12; t++) k += small.take(10, 250);
    expect(k).toBe(3);
    // the excess caps what one period may shed (counted in sockets by shed())
    const capped = new RebalancePlanner({ tolerance: 0.2, ratePercent: 100 });
    capped.update(share(150, [150, 0]), 150);
    expect(capped.update(share(150, [150, 0]), 150).shed).toBe(true);
    const first = capped.take(150, 1000);
    capped.shed(first);
    expect(first).toBe(50);
    expect(capped.take(150, 1000)).toBe(0);
  });

  test('take(): a long gap (a paused process) does not turn into a burst', () => {
    const p = planner();
    p.update(share(1000, [1000, 0]), 1000);
    expect(p.take(1000, 60_000)).toBeLessThanOrEqual(10);
  });
});

/**
 * A simulated scale-out behind a round-robin balancer: pods heartbeat every 5 s (the others see
 * counts that old), shed on 250 ms ticks, and every moved client lands on the next pod in turn,
 * this pod and the full ones included. A share `steerable` of them (polling-first clients) starting
 * on a shedding pod is started on its roomiest steering target instead (rebalance.ts, steer()).
 */
function simulate(start: number[], opts: { tolerance: number; ratePercent: number; seconds: number; steerable: number }) {
  const counts = [...start];
  const planners = counts.map(() => new RebalancePlanner(opts));
  const targets: Array<ReturnType<typeof steeringTargets>> = counts.map(() => []);
  const random = seeded(42);
  let rr = 0;
  let moved = 0;
  let within: number | undefined;
  const land = () => {
    const i = rr++ % counts.length;
    const best = planners[i].current.shed && random() < opts.steerable ? targets[i].find((t) => t.room > 0) : undefined;
    if (!best) return void counts[i]++;
    best.room--;
    counts[Number(best.id.slice(1))]++;
  };
  for (let t = 0; t < opts.seconds * 4; t++) {
    if (t % 20 === 0) {
      const seen = counts.map((c, j) => pod(`p${j}`, c, { tag: `t${j}` }));
      planners.forEach((p, i) => {
        const sh = fairShare({ self: `p${i}`, own: counts[i], pods: seen, now: NOW, heartbeatMs: HB });
        targets[i] = p.update(sh, counts[i]).shed ? steeringTargets(sh, `p${i}`) : [];
      });
    }
    planners.forEach((p, i) => {
      const n = p.take(counts[i], 250);
      p.shed(n);
      counts[i] -= n;
      moved += n;
      for (let k = 0; k < n; k++) land();
    });
    const fair = counts.reduce((a, b) => a + b, 0) / counts.length;
    if (within === undefined && counts.every((c) => Math.abs(c - fair) <= opts.tolerance * fair)) within = t / 4;
  }
  return { counts, moved, within };
}

describe('the rebalancing of a scale-out converges (simulated round-robin balancer, 5 s heartbeats)', () => {
  const defaults = { tolerance: 0.2, ratePercent: 1 };

  test('2 -> 3 pods under 300 websocket-only clients (no steering), the defaults: within the tolerance in under 100 s, then quiet', () => {
    const r = simulate([150, 150, 0], { ...defaults, seconds: 300, steerable: 0 });
    expect(r.within).toBeDefined();
    expect(r.within!).toBeLessThan(100);
    expect(Math.min(...r.counts)).toBeGreaterThanOrEqual(80);
    expect(Math.max(...r.counts)).toBeLessThanOrEqual(120);
    // round-robin sends two thirds of the moved clients to a full pod: about 3 moves per client that had to move (100)
    expect(r.moved).toBeLessThan(330);
  });

  test('the same with polling-first clients (steered to the new pod): sooner, and close to one move per client that had to move', () => {
    const r = simulate([150, 150, 0], { ...defaults, seconds: 300, steerable: 1 });
    expect(r.within!).toBeLessThan(45);
    expect(r.moved).toBeLessThan(130);
  });

  test('10 -> 11 pods of 5,000 each: the new pod reaches its band; steering keeps the moves near what had to move', () => {
    const fair = 50000 / 11;
    const steered = simulate([...Array(10).fill(5000), 0], { ...defaults, seconds: 600, steerable: 1 });
    expect(steered.within).toBeDefined();
    expect(steered.counts[10]).toBeGreaterThanOrEqual(0.8 * fair);
    expect(steered.moved).toBeLessThan(1.5 * fair);
    // without steering round-robin returns 10 of 11 moved clients to full pods: about every client moves once
    const plain = simulate([...Array(10).fill(5000), 0], { ...defaults, seconds: 600, steerable: 0 });
    expect(plain.within).toBeDefined();
    expect(plain.counts[10]).toBeGreaterThanOrEqual(0.8 * fair);
    expect(plain.moved).toBeLessThan(60000);
  });
});

describe('chooseSpread: which connections move', () => {
  const cand = (i: number, user: string, rooms: string[], extra: Partial<Candidate<number>> = {}): Candidate<number> => ({
    key: i,
    user,
    rooms,
    since: 0,
    sockets: 1,
    ...extra,
  });
  const opts = { now: 100_000, minAgeMs: 0, random: seeded(7) };

  test('one connection per user first (10 users with 3 tabs each, 10 wanted: 10 users)', () => {
    const cs = Array.from({ length: 30 }, (_, i) => cand(i, `u${i % 10}`, []));
    const got = chooseSpread(cs, 10, opts);
    expect(got).toHaveLength(10);
    expect(new Set(got.map((c) => c.user)).size).toBe(10);
  });

  test('rooms give in proportion: two rooms of 50 give 5 each of 10; a room of 2 among 100 gives at most 1', () => {
    const cs = Array.from({ length: 100 }, (_, i) => cand(i, `u${i}`, [i < 50 ? 'a' : 'b', ...(i < 2 ? ['tiny'] : [])]));
    for (let seed = 1; seed <= 20; seed++) {
      const got = chooseSpread(cs, 10, { ...opts, random: seeded(seed) });
      expect(got).toHaveLength(10);
      expect(got.filter((c) => c.rooms.includes('a'))).toHaveLength(5);
      expect(got.filter((c) => c.rooms.includes('tiny')).length).toBeLessThanOrEqual(1);
    }
  });

  test('the rules relax when they leave the batch short (one user, one room): still what was asked', () => {
    const cs = Array.from({ length: 20 }, (_, i) => cand(i, 'same', ['r']));
    expect(chooseSpread(cs, 7, opts)).toHaveLength(7);
    expect(chooseSpread(cs, 50, opts)).toHaveLength(20);
  });

  test('connections younger than minAgeMs are left alone; a connection with two namespaces counts two sockets', () => {
    const cs = [cand(1, 'u1', [], { since: 99_000 }), cand(2, 'u2', [], { sockets: 2 }), cand(3, 'u3', [])];
    const got = chooseSpread(cs, 2, { ...opts, minAgeMs: 5000 });
    expect(got.map((c) => c.key)).not.toContain(1);
    expect(got.reduce((n, c) => n + c.sockets, 0)).toBeGreaterThanOrEqual(2);
    expect(chooseSpread(cs, 0, opts)).toEqual([]);
    expect(chooseSpread([], 5, opts)).toEqual([]);
  });

  test('a batch from a large pod looks at a bounded sample, and the picks are spread over the whole pod', () => {
    const cs = Array.from({ length: 20000 }, (_, i) => cand(i, `u${i}`, [`r${i % 100}`]));
    const seen = new Set<number>();
    for (let k = 0; k < 50; k++)
      for (const c of chooseSpread(cs, 20, { ...opts, random: seeded(k + 1) })) seen.add(Math.floor(c.key / 2000));
    expect(seen.size).toBe(10); // every tenth of the pod contributed
  });
});
