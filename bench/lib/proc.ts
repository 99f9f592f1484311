/**
 * Child processes of a benchmark run: spawned, tracked, and always killed at the end.
 *
 * Three layers make sure nothing outlives the run:
 *  1. each benchmark stops what it started in a `finally`;
 *  2. `killAll()` runs on normal exit, on SIGINT/SIGTERM and on an uncaught error;
 *  3. a detached watchdog (watchdog.ts) holds the list of child pids; when this process dies
 *     in a way no handler sees (SIGKILL, OOM), its stdin closes and it kills those pids
 *     (only if the pid still has the same start time, so a reused pid is never touched).
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import fs from 'fs';
import net from 'net';
import path from 'path';

export interface Managed {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** The last 64 KiB of stdout + stderr. */
  output(): string;
  exited: Promise<number | null>;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Managed>();
const tempDirs = new Set<string>();
let watchdog: ChildProcess | undefined;
let hooksInstalled = false;

function clkTck(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}
export const CLK_TCK = clkTck();

/** Fields of /proc/<pid>/stat after the command name (index 0 = field 3, "state"). */
function statFields(pid: number): string[] | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Process start time in clock ticks since boot (field 22), to recognise a pid later. */
export function startTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** CPU time (user + system) of a process in milliseconds, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  const f = statFields(pid);
  if (!f) return NaN;
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** CPU time of a process split into user and system milliseconds. */
export function cpuSplitMs(pid: number): { user: number; system: number } {
  const f = statFields(pid);
  if (!f) return { user: NaN, system: NaN };
  return { user: (Number(f[11]) * 1000) / CLK_TCK, system: (Number(f[12]) * 1000) / CLK_TCK };
}

/**
 * Context switches of a process's main thread (`voluntary_ctxt_switches`: it blocked, mostly in
 * epoll_wait, so each is a wake-up afterwards; `nonvoluntary`: it was preempted).
 */
export function switches(pid: number): { voluntary: number; involuntary: number } {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const v = /\nvoluntary_ctxt_switches:\s+(\d+)/.exec(s);
    const n = /nonvoluntary_ctxt_switches:\s+(\d+)/.exec(s);
    return { voluntary: v ? Number(v[1]) : NaN, involuntary: n ? Number(n[1]) : NaN };
  } catch {
    return { voluntary: NaN, involuntary: NaN };
  }
}

/** Resident set size of a process in KiB (VmRSS of /proc/<pid>/status). */
export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Soft limit of open files of this process (children inherit it). */
export function openFilesLimit(): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return Infinity;
    return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return Infinity;
  }
}

function startWatchdog(): void {
  if (watchdog) return;
  const script = path.join(__dirname, 'watchdog.js');
  if (!fs.existsSync(script)) return;
  watchdog = spawn(process.execPath, [script], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  watchdog.on('error', () => undefined);
  watchdog.stdin?.on('error', () => undefined);
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void })?.unref?.();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const m of live) if (m.alive()) m.proc.kill('SIGKILL');
    for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
    watchdog?.stdin?.end();
  });
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${sig}, stopping child processes\n`);
    void killAll(1000).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/** Spawns a tracked child process. */
export function spawnTracked(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: { cwd?: string } = {}): Managed {
  installHooks();
  startWatchdog();
  const proc = spawn(cmd, args, { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const append = (d: Buffer) => {
    out += d.toString();
    if (out.length > 65536) out = out.slice(-65536);
  };
  proc.stdout?.on('data', append);
  proc.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)));
    proc.once('error', (e) => {
      append(Buffer.from(`spawn error: ${e.message}\n`));
      resolve(-1);
    });
  });
  const m: Managed = {
    name,
    pid: proc.pid ?? -1,
    proc,
    output: () => out,
    exited,
    alive: () => proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined,
    async stop(graceMs = 3000) {
      if (m.alive()) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => m.alive() && proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      live.delete(m);
    },
  };
  live.add(m);
  void exited.then(() => live.delete(m));
  if (proc.pid !== undefined) {
    const st = startTime(proc.pid);
    if (st) watchdog?.stdin?.write(`${proc.pid} ${st}\n`);
  }
  return m;
}

/**
 * A scratch directory (under the OS temp dir, name starting `rtg-bench-`) removed at exit, or by the
 * watchdog if this process dies without running its exit handlers. `forget` after removing it yourself.
 */
export function trackTempDir(dir: string): { forget(): void } {
  installHooks();
  startWatchdog();
  tempDirs.add(dir);
  watchdog?.stdin?.write(`dir ${dir}\n`);
  return { forget: () => tempDirs.delete(dir) };
}

/** Stops every tracked process still running. */
export async function killAll(graceMs = 2000): Promise<void> {
  await Promise.allSettled([...live].map((m) => m.stop(graceMs)));
}

/** Names and pids of tracked processes still running (should be empty at the end). */
export function stillRunning(): string[] {
  return [...live].filter((m) => m.alive()).map((m) => `${m.name} (pid ${m.pid})`);
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Waits until a loopback TCP port accepts connections, failing early if `m` exits. */
export async function waitPort(port: number, timeoutMs: number, m?: Managed): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (m && !m.alive()) throw new Error(`${m.name} exited before listening on ${port}:\n${m.output().slice(-4000)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end)
      throw new Error(`${m?.name ?? 'process'}: port ${port} not open after ${timeoutMs} ms${m ? `:\n${m.output().slice(-4000)}` : ''}`);
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
