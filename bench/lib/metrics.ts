/** Reading a gateway's Prometheus `/metrics` (its METRICS_PORT) from a benchmark. */
import http from 'http';

/** The text of `/metrics` ('' when the port does not answer within `timeoutMs`). */
export function metricsText(port: number, timeoutMs = 5000): Promise<string> {
  return new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve(t));
      res.on('error', () => resolve(''));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve(''));
  });
}

/** Every sample of `name` in a /metrics text: labels text (`{...}` or '') to value. */
export function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

/** Sum of a metric over the label sets that pass `filter`. */
export function sum(text: string, name: string, filter: (labels: string) => boolean = () => true): number {
  let n = 0;
  for (const [labels, v] of samples(text, name)) if (filter(labels)) n += v;
  return n;
}

/** Sum of a metric on a gateway (all label sets passing `filter`). */
export async function scrape(port: number, name: string, filter?: (labels: string) => boolean): Promise<number> {
  return sum(await metricsText(port), name, filter);
}

/** A metric's values by one label (e.g. `reason`), summed over the other labels. */
export function byLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const re = new RegExp(`${label}="([^"]*)"`);
  for (const [labels, v] of samples(text, name)) {
    const key = re.exec(labels)?.[1] ?? '';
    out[key] = (out[key] ?? 0) + v;
  }
  return out;
}

/** after − before, key by key (keys of either). */
export function diffRecord(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) out[k] = (after[k] ?? 0) - (before[k] ?? 0);
  return out;
}
