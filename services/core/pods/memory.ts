import type { PodInfo, PodRegistry } from './registry';

/** The single node's registry: itself only; it never reaps itself. */
export class MemoryPodRegistry implements PodRegistry {
  private podMap = new Map<string, PodInfo>();

  async heartbeat(info: PodInfo): Promise<boolean> {
    this.podMap.set(info.id, info);
    return false;
  }

  async pods(): Promise<PodInfo[]> {
    return [...this.podMap.values()];
  }

  async markReaped(): Promise<number | null> {
    return null;
  }

  async forgetPod(pod: string): Promise<void> {
    this.podMap.delete(pod);
  }

  async removePod(pod: string): Promise<void> {
    this.podMap.delete(pod);
  }
}
