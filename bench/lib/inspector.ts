/**
 * A tiny Chrome DevTools Protocol client for a server started with `--inspect=127.0.0.1:<port>`:
 * forces a full GC (HeapProfiler.collectGarbage) before memory samples and records CPU profiles
 * of a precise window (Profiler.start/stop), without any admin endpoint in the server itself.
 */
import http from 'http';
import WebSocket from 'ws';
import { sleep } from './proc';

export interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    hitCount?: number;
    children?: number[];
  }>;
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', reject);
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
  });
}

export class Inspector {
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private chunks: string[] | undefined;

  private constructor(private ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const msg = JSON.parse(d.toString()) as {
        id?: number;
        method?: string;
        params?: { chunk?: string };
        result?: unknown;
        error?: { message: string };
      };
      if (msg.method === 'HeapProfiler.addHeapSnapshotChunk' && this.chunks) this.chunks.push(msg.params?.chunk ?? '');
      if (msg.id === undefined) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result);
    });
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('inspector closed'));
      this.pending.clear();
    });
  }

  /** Attaches to the inspector listening on `port` (polls /json/list until it answers). */
  static async attach(port: number, timeoutMs = 10000): Promise<Inspector> {
    const end = Date.now() + timeoutMs;
    let target: string | undefined;
    while (!target) {
      try {
        const list = (await getJson(`http://127.0.0.1:${port}/json/list`)) as Array<{ webSocketDebuggerUrl?: string }>;
        target = list[0]?.webSocketDebuggerUrl;
      } catch {
        /* not up yet */
      }
      if (!target) {
        if (Date.now() > end) throw new Error(`inspector on port ${port} did not answer within ${timeoutMs} ms`);
        await sleep(100);
      }
    }
    const ws = new WebSocket(target, { perMessageDeflate: false, maxPayload: 1024 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  send<T = any>(method: string, params: Record<string, unknown> = {}, timeoutMs = 60000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`inspector ${method} timed out`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** A full, synchronous major GC in the target process. */
  async gc(): Promise<void> {
    await this.send('HeapProfiler.collectGarbage');
  }

  /** V8 heap: used and total bytes. */
  async heapUsage(): Promise<{ usedSize: number; totalSize: number }> {
    return this.send('Runtime.getHeapUsage');
  }

  /** A full heap snapshot (JSON text of the .heapsnapshot format). Slow and big: diagnostics only. */
  async heapSnapshot(): Promise<string> {
    this.chunks = [];
    try {
      await this.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 300000);
      return this.chunks.join('');
    } finally {
      this.chunks = undefined;
    }
  }

  async startProfile(samplingIntervalUs = 500): Promise<void> {
    await this.send('Profiler.enable');
    await this.send('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
    await this.send('Profiler.start');
  }

  async stopProfile(): Promise<CpuProfile> {
    const r = await this.send<{ profile: CpuProfile }>('Profiler.stop');
    await this.send('Profiler.disable').catch(() => undefined);
    return r.profile;
  }

  /** Evaluates `expression` in the target (with the command line API: `require` is available) and returns its value. */
  async evaluate<T = unknown>(expression: string): Promise<T> {
    const r = await this.send<{ result: { value?: T }; exceptionDetails?: { text: string } }>('Runtime.evaluate', {
      expression,
      includeCommandLineAPI: true,
      returnByValue: true,
    });
    if (r.exceptionDetails) throw new Error(`inspector evaluate failed: ${r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** Starts an event-loop delay histogram in the target (perf_hooks.monitorEventLoopDelay, 10 ms resolution). */
  async startLagMonitor(): Promise<void> {
    await this.evaluate(
      "globalThis.__benchLag?.disable(); globalThis.__benchLag = require('perf_hooks').monitorEventLoopDelay({ resolution: 10 }); globalThis.__benchLag.enable(); true",
    );
  }

  /** What the histogram saw since startLagMonitor (ms), and stops it. */
  async stopLagMonitor(): Promise<{ maxMs: number; p99Ms: number; meanMs: number }> {
    const json = await this.evaluate<string>(
      'const h = globalThis.__benchLag; h.disable(); JSON.stringify({ maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6, meanMs: h.mean / 1e6 })',
    );
    return JSON.parse(json) as { maxMs: number; p99Ms: number; meanMs: number };
  }

  close(): void {
    this.ws.terminate();
  }
}
