/**
 * The machine's price of a wake-up: a trivial Node TCP echo server (echo-server.ts) is sent one
 * byte at a time at a few rates over loopback; its CPU per message (from /proc) and its main
 * thread's voluntary context switches per message. A process that sleeps between events pays the
 * wake-up on every event; one that is busy does not. On a VM whose idle wake-ups are expensive,
 * a pod's CPU per event rises steeply as its event rate falls, whatever the pod does with the
 * event: a fixed offered rate spread over more pods is then dearer per message for that reason
 * alone. The scale-out benchmark reports this beside its own figures.
 */
import { fork } from 'child_process';
import net from 'net';
import path from 'path';
import { cpuMs, sleep, switches } from './proc';

export interface WakeupPoint {
  rate: number;
  /** CPU µs of the echo process per message. */
  cpuUsPerMessage: number;
  /** Voluntary switches of its main thread per message. */
  wakeupsPerMessage: number;
}

/** Drives the echo server at each rate (msg/s) for `seconds`, one message per timer tick. */
export async function wakeupCost(rates: number[], seconds: number): Promise<WakeupPoint[]> {
  const child = fork(path.join(__dirname, 'echo-server.js'), [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve(Number(m)));
      child.once('error', reject);
    });
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.setNoDelay(true);
    sock.on('data', () => undefined);
    const out: WakeupPoint[] = [];
    for (const rate of rates) {
      const n = Math.max(1, Math.round(rate * seconds));
      const pid = child.pid!;
      const c0 = cpuMs(pid);
      const s0 = switches(pid).voluntary;
      const t0 = Date.now();
      let sent = 0;
      await new Promise<void>((done) => {
        const tick = () => {
          const due = Math.min(n, Math.floor(((Date.now() - t0) / 1000) * rate) + 1);
          while (sent < due) {
            sock.write('x');
            sent++;
          }
          if (sent >= n) return done();
          setTimeout(tick, 1000 / rate);
        };
        tick();
      });
      await sleep(200);
      out.push({
        rate,
        cpuUsPerMessage: ((cpuMs(pid) - c0) * 1000) / n,
        wakeupsPerMessage: (switches(pid).voluntary - s0) / n,
      });
    }
    sock.destroy();
    return out;
  } finally {
    child.kill('SIGKILL');
  }
}
