import type { Keys } from '../redis/keys';
import { guarded, type RedisClient } from '../redis/client';
import { PodHeartbeatCode } from '../redis/scripts';
import type { PodInfo, PodRegistry } from './registry';

/** Heartbeats in one Redis hash (pod -> JSON), each transition one Lua script. */
export class RedisPodRegistry implements PodRegistry {
  constructor(
    private r: RedisClient,
    private keys: Keys,
  ) {}

  async heartbeat(info: PodInfo, registeredBefore: boolean): Promise<boolean> {
    const code = await guarded(this.r, () =>
      this.r.podHeartbeat(this.keys.pods(), info.id, JSON.stringify(info), registeredBefore ? '1' : '0'),
    );
    return code === PodHeartbeatCode.ReapedMeanwhile;
  }

  async markReaped(pod: string, cutoff: number): Promise<number | null> {
    const r = await guarded(this.r, () => this.r.podMarkReaped(this.keys.pods(), pod, cutoff));
    return r === null ? null : Number(r);
  }

  async forgetPod(pod: string): Promise<void> {
    await guarded(this.r, () => this.r.podForget(this.keys.pods(), pod));
  }

  async pods(): Promise<PodInfo[]> {
    const h = await guarded(this.r, () => this.r.hgetall(this.keys.pods()));
    const out: PodInfo[] = [];
    for (const v of Object.values(h)) {
      try {
        out.push(JSON.parse(v) as PodInfo);
      } catch {
        /* a corrupt entry is skipped; the next heartbeat rewrites it */
      }
    }
    return out;
  }

  async removePod(pod: string): Promise<void> {
    await guarded(this.r, () => this.r.hdel(this.keys.pods(), pod));
  }
}
