import type { Server } from 'socket.io';
import { broadcast } from '../adapter/broadcast';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { presenceRoom, type PresenceEntry, type PresenceStore, type Transition } from './store';

/**
 * Presence as the services use it: applies transitions, announces each exactly once to the
 * subscribers (through the adapter, so across pods), keeps the online counts, and sweeps
 * pending offlines. Gateways and workers both sweep; the scripts make only one of them win.
 */
export class Presence {
  constructor(
    public readonly store: PresenceStore,
    private io: Server,
    private opts: { pod: string; graceMs: number; logger: Logger; metrics: Metrics },
  ) {}

  /** Announces a transition (once) and records it in the online count; false when it was skipped. */
  async announce(t: Transition): Promise<boolean> {
    const payload: PresenceEntry = { userId: t.userId, status: t.status, lastSeen: t.lastSeen };
    let sent = true;
    if (this.store.announce) sent = await this.store.announce(t, payload);
    else await broadcast(this.io.of(t.nsp), { rooms: [presenceRoom(t.userId)] }, 'presence', payload);
    if (sent) this.opts.metrics.presenceTransitions.inc({ kind: t.status });
    // Versioned, so recording again after a retried announcement changes nothing.
    await this.store.recordOnline(t).catch((e) => this.opts.logger.debug({ err: (e as Error).message }, 'online count update failed'));
    return sent;
  }

  /**
   * Connects of this pod still being recorded, by namespace and socket id. A socket that goes
   * away at once must not be removed before it is recorded: on a Redis Cluster the commands of
   * the two go to different nodes and could cross, leaving a socket that never disconnects.
   */
  private connecting = new Map<string, Promise<unknown>>();

  async connected(nsp: string, userId: string, sid: string): Promise<void> {
    const k = `${nsp}\n${sid}`;
    const p = this.store.connect(nsp, userId, sid, this.opts.pod, Date.now());
    this.connecting.set(k, p);
    try {
      const t = await p;
      if (t) await this.announce(t);
    } finally {
      if (this.connecting.get(k) === p) this.connecting.delete(k);
    }
  }

  async disconnected(nsp: string, userId: string, sid: string, pod = this.opts.pod, deadline?: number): Promise<void> {
    const recording = this.connecting.get(`${nsp}\n${sid}`);
    if (recording) await recording.catch(() => undefined);
    const now = Date.now();
    await this.store.disconnect(nsp, userId, sid, pod, now, deadline ?? now + this.opts.graceMs);
  }

  /** Decides and announces every offline whose grace period is over. */
  async sweep(): Promise<number> {
    let n = 0;
    // Bounded: a pass that cannot settle its entries (Redis trouble) ends and the next one retries.
    for (let pass = 0; pass < 50; pass++) {
      const ts = await this.store.finalizeDue(Date.now(), 200);
      for (const t of ts) {
        if (await this.announce(t)) n++;
        await this.store.settle?.(t);
      }
      if (ts.length < 200) return n;
    }
    return n;
  }

  /** Removes every socket a dead pod held; their offlines are announced by the sweep. */
  async reapPod(pod: string, deadline: number): Promise<number> {
    const sockets = await this.store.podSockets(pod);
    for (const s of sockets) await this.disconnected(s.nsp, s.userId, s.sid, pod, deadline);
    if (sockets.length) this.opts.metrics.reapedSockets.inc(sockets.length);
    return sockets.length;
  }
}
