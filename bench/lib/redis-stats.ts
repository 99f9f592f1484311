import Redis from 'ioredis';

/** Calls per Redis command (lower-case name) from INFO commandstats. */
export type CommandCounts = Record<string, number>;

/**
 * Reads INFO commandstats of the benchmark's Redis (one short-lived connection per call). On a
 * loaded machine a connect can take seconds: a long connect timeout, and up to 3 attempts.
 */
export async function commandCounts(url: string): Promise<CommandCounts> {
  for (let attempt = 1; ; attempt++) {
    const r = new Redis(url, {
      maxRetriesPerRequest: 1,
      lazyConnect: true,
      connectTimeout: 30000,
      retryStrategy: () => null,
      connectionName: 'bench-stats',
    });
    r.on('error', () => {
      /* reported by the rejected command */
    });
    try {
      await r.connect();
      const info = await r.info('commandstats');
      const out: CommandCounts = {};
      for (const line of info.split('\n')) {
        const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
        if (m) out[m[1]] = Number(m[2]);
      }
      return out;
    } catch (e) {
      if (attempt >= 3) throw e;
    } finally {
      r.disconnect();
    }
  }
}

/** after − before, without the stats connection's own commands (info, client). */
export function diffCounts(before: CommandCounts, after: CommandCounts): CommandCounts {
  const out: CommandCounts = {};
  for (const [k, v] of Object.entries(after)) {
    if (k === 'info' || k.startsWith('client')) continue;
    const d = v - (before[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

/** Counts divided by `n`, rounded for display, biggest first. */
export function perUnit(c: CommandCounts, n: number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(c)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => [k, Number((v / n).toFixed(3))]),
  );
}

export function total(c: CommandCounts): number {
  return Object.values(c).reduce((a, b) => a + b, 0);
}
