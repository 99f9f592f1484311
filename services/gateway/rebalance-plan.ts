import type { PodInfo } from '../core/pods/registry';

// The arithmetic of rebalancing (ARCHITECTURE.md, "Rebalancing"), free of I/O so tests can drive
// it: which pods share the load, the fair share, whether this pod sheds and how much, how fast, and
// when shedding makes no progress (a pod that is registered and ready but gets no traffic).

/** Differences of this many connections or fewer are never worth a move, whatever the tolerance. */
export const MIN_SLACK = 2;
/** Connections moved (at least, and at least 4 per pod) before the progress of a rebalancing is judged. */
export const STALL_WINDOW = 20;
/** Heartbeat periods a stalled rebalancing waits before it tries again. */
export const PAUSE_PERIODS = 60;

/** Why a pod does not shed now (`Plan.reason`), also the label of the rebalance state in logs. */
export type Hold = 'alone' | 'balanced' | 'confirming' | 'pod_draining' | 'self_draining' | 'stalled' | 'unknown';

export type Plan =
  | { shed: false; reason: Hold; fair?: number; pods?: number }
  | { shed: true; fair: number; pods: number; excess: number; why: 'above' | 'under' | 'continuing' };

export interface ShareInput {
  /** This pod's id (its own registry entry is replaced by `own`). */
  self: string;
  /** Connections this pod holds now. */
  own: number;
  pods: PodInfo[];
  now: number;
  heartbeatMs: number;
}

export interface Share {
  /** The pods that share the load, this one included, with their connection counts (and session tags, forwarding.ts). */
  counts: Array<{ id: string; connections: number; tag?: string }>;
  fair: number;
  /** True when some live pod is draining (its clients are landing on the others: counts in flux). */
  draining: boolean;
}

/**
 * The pods that take connections now: registered, not reaped, heard from within 3 heartbeat
 * periods (the reap bound), ready (a pod registers before it serves), not draining. Their fair
 * share is the mean of their counts, this pod's own count taken live.
 */
export function fairShare({ self, own, pods, now, heartbeatMs }: ShareInput): Share {
  const counts: Share['counts'] = [{ id: self, connections: own }];
  let draining = false;
  for (const p of pods) {
    if (p.id === self || p.reaped || now - p.lastHeartbeat > 3 * heartbeatMs) continue;
    if (p.draining) {
      draining = true;
      continue;
    }
    if (p.ready === false) continue;
    const n = Number(p.connections);
    counts.push({ id: p.id, connections: Number.isFinite(n) && n > 0 ? n : 0, ...(typeof p.tag === 'string' ? { tag: p.tag } : {}) });
  }
  const fair = counts.reduce((s, c) => s + c.connections, 0) / counts.length;
  return { counts, fair, draining };
}

/**
 * The pods a pod above the fair share may start new sessions on (rebalance-http.ts), each with
 * the sessions it may send there until the next update: the pod's room below the fair share,
 * split between the pods above it (they all steer to it on counts as old as a heartbeat), the
 * roomiest first.
 */
export function steeringTargets(share: Share, self: string): Array<{ id: string; tag: string; room: number }> {
  const above = Math.max(1, share.counts.filter((c) => c.connections > share.fair).length);
  return share.counts
    .filter((c) => c.id !== self && c.tag !== undefined && c.connections < share.fair - 1)
    .map((c) => ({ id: c.id, tag: c.tag!, room: Math.floor((share.fair - c.connections) / above) }))
    .filter((t) => t.room > 0)
    .sort((a, b) => b.room - a.room);
}

export interface RebalanceOptions {
  /** REBALANCE_TOLERANCE_PERCENT / 100. */
  tolerance: number;
  /** REBALANCE_RATE_PERCENT: closes per second in percent of this pod's connections. */
  ratePercent: number;
}

/**
 * One pod's rebalancing state. `update` runs once per heartbeat period with a fresh read of the
 * registry and decides whether to shed: start when this pod is above the fair share by more than
 * the tolerance, or when it is above the fair share while another pod is below it by more than the
 * tolerance, two updates in a row; then keep going until it is down to the fair share (hysteresis:
 * no flapping at the edge of the band). `take` is called every tick and says how many connections
 * to close now.
 */
export class RebalancePlanner {
  private plan: Plan = { shed: false, reason: 'unknown' };
  private budget = 0;
  private shedSinceUpdate = 0;
  private shedTotal = 0;
  private window?: { spread: number; shedAtStart: number };
  private pausedPeriods = 0;
  /** The previous update called for a start too (a start needs two in a row). */
  private wanted = false;

  constructor(private readonly opts: RebalanceOptions) {}

  /** The decision of the last update. */
  get current(): Plan {
    return this.plan;
  }

  /** Decides from a fresh view of the cluster (`share`), or holds when the view is unknown (the registry could not be read). */
  update(share: Share | undefined, own: number, selfDraining = false): Plan {
    this.shedSinceUpdate = 0;
    this.plan = this.decide(share, own, selfDraining);
    if (!this.plan.shed) this.budget = 0;
    return this.plan;
  }

  private decide(share: Share | undefined, own: number, selfDraining: boolean): Plan {
    const wanted = this.wanted;
    this.wanted = false;
    if (selfDraining) return { shed: false, reason: 'self_draining' };
    if (!share) return { shed: false, reason: 'unknown' };
    const { fair, counts } = share;
    const base = { fair, pods: counts.length };
    if (counts.length < 2) return { shed: false, reason: 'alone', ...base };
    if (share.draining) return { shed: false, reason: 'pod_draining', ...base };
    const spread = Math.max(...counts.map((c) => c.connections)) - Math.min(...counts.map((c) => c.connections));
    if (this.pausedPeriods > 0) {
      this.pausedPeriods--;
      return { shed: false, reason: 'stalled', ...base };
    }
    const excess = Math.floor(own - fair);
    const slack = Math.max(this.opts.tolerance * fair, MIN_SLACK);
    const above = own - fair > slack;
    const under = counts.some((c) => fair - c.connections > slack);
    const continuing = this.plan.shed;
    if (excess < 1 || !(above || under || continuing)) {
      this.window = undefined;
      return { shed: false, reason: 'balanced', ...base };
    }
    // The others' counts are as old as their last heartbeat: right after a burst of connections
    // (a restart, a scale-out) one view can be off by a whole period's arrivals. A start needs two
    // views in a row that call for it.
    if (!continuing && !wanted) {
      this.wanted = true;
      return { shed: false, reason: 'confirming', ...base };
    }
    if (this.stalled(spread, counts.length)) return { shed: false, reason: 'stalled', ...base };
    return { shed: true, ...base, excess, why: above ? 'above' : under ? 'under' : 'continuing' };
  }

  /**
   * Whether moving connections evens nothing out: each connection moved off the fullest pod
   * narrows the spread between the fullest and the emptiest by about 1/n on average even when a
   * round-robin balancer sends most of them to other full pods. When a window of STALL_WINDOW (and
   * 4 per pod) moves narrowed it by less than a quarter of that, the light pod gets no traffic (the
   * balancer does not route to it) or every client comes straight back: the moves are for nothing,
   * and rebalancing pauses for PAUSE_PERIODS heartbeat periods.
   */
  private stalled(spread: number, pods: number): boolean {
    if (!this.window) {
      this.window = { spread, shedAtStart: this.shedTotal };
      return false;
    }
    const moved = this.shedTotal - this.window.shedAtStart;
    if (moved < Math.max(STALL_WINDOW, 4 * pods)) return false;
    const narrowed = this.window.spread - spread;
    this.window = undefined;
    if (narrowed >= moved / (4 * pods)) return false;
    this.pausedPeriods = PAUSE_PERIODS;
    return true;
  }

  /**
   * Connections to close now, `dtMs` after the previous call: at most REBALANCE_RATE_PERCENT of
   * `own` per second (at least one per second), never more than the excess of the last update.
   */
  take(own: number, dtMs: number): number {
    if (!this.plan.shed) return 0;
    const perSecond = Math.max(1, (this.opts.ratePercent / 100) * own);
    // A long gap (a paused process) does not turn into a burst: one second's worth at most.
    this.budget = Math.min(this.budget + (perSecond * Math.min(dtMs, 1000)) / 1000, perSecond + 1);
    const n = Math.min(Math.floor(this.budget), this.plan.excess - this.shedSinceUpdate);
    if (n <= 0) return 0;
    this.budget -= n;
    return n;
  }

  /** Records `n` sockets closed (a connection may hold several namespaces' sockets). */
  shed(n: number): void {
    this.shedSinceUpdate += n;
    this.shedTotal += n;
  }
}
