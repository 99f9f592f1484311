import type { PodInfo } from './registry';

/** Where a gateway pod is reached: parsed from the `address` of its heartbeat. */
export interface PodTarget {
  pod: string;
  address: string;
  host: string;
  port: number;
}

/** What a lookup found: the pod, none (no such tag among the live pods), or nothing known (the registry cannot be read). */
export type Lookup = PodTarget | 'unknown' | 'unavailable';

/** An `http://host:port` address as a connect target, or undefined for anything else (no other scheme, no path, no credentials). */
export function parseAddress(pod: string, address: unknown): PodTarget | undefined {
  if (typeof address !== 'string' || !URL.canParse(address)) return undefined;
  const u = new URL(address);
  if (u.protocol !== 'http:' || !u.hostname || u.username || u.password || u.search || u.hash) return undefined;
  if (u.pathname !== '/' && u.pathname !== '') return undefined;
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { pod, address: `${u.protocol}//${u.host}`, host, port: u.port ? Number(u.port) : 80 };
}

/**
 * The gateway pods by the tag of their Engine.IO session ids, from the pod registry (heartbeats
 * carry `{ id, tag, address }`): the only source of an address a pod forwards to, so a session id
 * a client made up can name a pod but never an address. Pods marked reaped are gone. A cache, read
 * again every heartbeat period (`refresh`) and when a tag is not in it, at most once per
 * `minIntervalMs` however many unknown tags arrive (forged ids cost the registry nothing more).
 */
export class PodDirectory {
  private byTag = new Map<string, PodTarget>();
  private lastLoadStart = -Infinity;
  private pending?: { started: Promise<number>; done: Promise<boolean> };

  constructor(
    private list: () => Promise<PodInfo[]>,
    private self: { tag: string; address: () => string | undefined },
    private minIntervalMs = 250,
    private now: () => number = Date.now,
  ) {}

  /** The pod holding `tag`, from the cache only. */
  peek(tag: string): PodTarget | undefined {
    return this.byTag.get(tag);
  }

  /** Number of pods known (other than this one). */
  get size(): number {
    return this.byTag.size;
  }

  /** Reads the registry now (joining a read in flight); false when it could not be read (the cache stays). */
  refresh(): Promise<boolean> {
    return this.load(0).done;
  }

  /** The pod holding `tag`: from the cache, else after reading the registry again (rate-limited, coalesced). */
  async lookup(tag: string): Promise<Lookup> {
    const hit = this.byTag.get(tag);
    if (hit) return hit;
    const asked = this.now();
    for (let attempt = 0; attempt < 2; attempt++) {
      const load = this.load(this.minIntervalMs);
      const started = await load.started;
      const ok = await load.done;
      const found = this.byTag.get(tag);
      if (found) return found;
      if (!ok) return 'unavailable';
      // A read that began before this lookup may predate the pod's first heartbeat: one more.
      if (started >= asked) break;
    }
    return 'unknown';
  }

  /** Whether `tag` is still a live pod, from a read of the registry that starts after this call (true when the registry cannot be read). */
  async confirm(tag: string): Promise<boolean> {
    const asked = this.now();
    for (let attempt = 0; attempt < 2; attempt++) {
      const load = this.load(this.minIntervalMs);
      const started = await load.started;
      if (!(await load.done)) return true;
      if (started >= asked) break;
    }
    return this.byTag.has(tag);
  }

  private load(minIntervalMs: number): { started: Promise<number>; done: Promise<boolean> } {
    if (this.pending) return this.pending;
    const wait = Math.max(0, this.lastLoadStart + minIntervalMs - this.now());
    let markStarted!: (t: number) => void;
    const started = new Promise<number>((r) => (markStarted = r));
    const done = (async () => {
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const t = this.now();
      this.lastLoadStart = t;
      markStarted(t);
      try {
        this.byTag = this.index(await this.list());
        return true;
      } catch {
        return false;
      } finally {
        this.pending = undefined;
      }
    })();
    this.pending = { started, done };
    return this.pending;
  }

  private index(pods: PodInfo[]): Map<string, PodTarget> {
    const own = this.self.address();
    const m = new Map<string, PodTarget>();
    for (const p of pods) {
      if (p.reaped || typeof p.tag !== 'string' || p.tag === this.self.tag) continue;
      const target = parseAddress(p.id, p.address);
      // An entry advertising this pod's own address is a predecessor on a reused IP: never forward to oneself.
      if (!target || target.address === own) continue;
      const prev = m.get(p.tag);
      if (!prev || (pods.find((x) => x.id === prev.pod)?.lastHeartbeat ?? 0) < p.lastHeartbeat) m.set(p.tag, target);
    }
    return m;
  }
}
