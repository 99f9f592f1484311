// Which connections a pod moves when it sheds load (rebalancing) or drains in batches: spread over
// users and rooms, so that no user loses all their tabs at once and no room loses all its members on
// this pod in one batch (which would also make the pod drop and re-take the room's subscription).
// Pure: tests drive it with plain candidates.

/** One Engine.IO connection of the pod, as the choice sees it. */
export interface Candidate<K> {
  key: K;
  /** The user of the connection (its first namespace's principal). */
  user: string;
  /** Rooms of its sockets (any namespace), excluding each socket's own and its user's. */
  rooms: string[];
  /** When it connected (ms): a connection that just arrived (maybe a moved one) is left alone for a while. */
  since: number;
  /** Sockets it holds (one per namespace): what the pod's connection count drops by when it closes. */
  sockets: number;
}

export interface ChoiceOptions {
  now: number;
  /** Connections younger than this are not chosen (0: any). */
  minAgeMs: number;
  /** Random source in [0, 1) (tests pass a seeded one). */
  random?: () => number;
  /** Candidates looked at per call: `sampleFactor` times the sockets wanted, at least 256. */
  sampleFactor?: number;
}

/** In-place partial Fisher-Yates: the first `k` entries of `a` become a uniform random sample of it. */
function sampleInPlace<T>(a: T[], k: number, random: () => number): T[] {
  const n = Math.min(k, a.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (a.length - i));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, n);
}

/**
 * Connections worth `want` sockets (or all there are), chosen from a random sample: first one per
 * user and at most a proportional share of each room (a room holding r of the sample's n
 * connections gives at most ceil(r * want / n) of them, at least 1); if that leaves the batch short,
 * the room shares are relaxed, then the one-per-user rule.
 */
export function chooseSpread<K>(candidates: ReadonlyArray<Candidate<K>>, want: number, opts: ChoiceOptions): Array<Candidate<K>> {
  const random = opts.random ?? Math.random;
  const eligible = candidates.filter((c) => opts.now - c.since >= opts.minAgeMs);
  if (want <= 0 || !eligible.length) return [];
  const pool = sampleInPlace(eligible, Math.max(256, want * (opts.sampleFactor ?? 8)), random);
  const inRoom = new Map<string, number>();
  for (const c of pool) for (const r of c.rooms) inRoom.set(r, (inRoom.get(r) ?? 0) + 1);
  const quota = (r: string) => Math.max(1, Math.ceil(((inRoom.get(r) ?? 0) * want) / pool.length));

  const chosen: Array<Candidate<K>> = [];
  const taken = new Set<Candidate<K>>();
  const users = new Set<string>();
  const fromRoom = new Map<string, number>();
  let sockets = 0;
  const passes: Array<(c: Candidate<K>) => boolean> = [
    (c) => !users.has(c.user) && c.rooms.every((r) => (fromRoom.get(r) ?? 0) < quota(r)),
    (c) => !users.has(c.user),
    () => true,
  ];
  for (const fits of passes) {
    for (const c of pool) {
      if (sockets >= want) return chosen;
      if (taken.has(c) || !fits(c)) continue;
      taken.add(c);
      chosen.push(c);
      users.add(c.user);
      for (const r of c.rooms) fromRoom.set(r, (fromRoom.get(r) ?? 0) + 1);
      sockets += c.sockets;
    }
  }
  return chosen;
}
