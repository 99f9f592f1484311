import net from 'net';

/** A loopback TCP proxy standing in for the ingress: clients keep one URL while the backends change. */
export interface TcpProxy {
  port: number;
  url: string;
  /** Backend ports tried round-robin for each new connection; a refused backend is skipped. */
  setTargets(ports: number[]): void;
  /** Connections accepted so far, by the backend port they were piped to. */
  routed: Map<number, number>;
  /** Cuts every open connection (both sides see the TCP connection close). */
  dropAll(): void;
  close(): Promise<void>;
}

/**
 * Starts a round-robin TCP proxy on 127.0.0.1. With no targets (or every target refusing), new
 * connections are closed at once, so clients see a failed reconnection attempt and retry.
 */
export async function startProxy(targets: number[]): Promise<TcpProxy> {
  let list = [...targets];
  let next = 0;
  const open = new Set<net.Socket>();
  const routed = new Map<number, number>();
  const track = (s: net.Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = net.createServer((inbound) => {
    track(inbound);
    inbound.pause();
    const order = list.map((_, i) => list[(next + i) % list.length]);
    next++;
    const attempt = (i: number) => {
      if (inbound.destroyed) return;
      if (i >= order.length) return void inbound.destroy();
      const port = order[i];
      const out = net.connect(port, '127.0.0.1');
      let connected = false;
      out.once('connect', () => {
        connected = true;
        if (inbound.destroyed) return void out.destroy();
        routed.set(port, (routed.get(port) ?? 0) + 1);
        track(out);
        out.on('close', () => inbound.destroy());
        inbound.on('close', () => out.destroy());
        inbound.pipe(out);
        out.pipe(inbound);
        inbound.resume();
      });
      out.once('error', () => {
        if (!connected) attempt(i + 1);
      });
    };
    attempt(0);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    routed,
    setTargets(ports) {
      list = [...ports];
      next = 0;
    },
    dropAll() {
      for (const s of open) s.destroy();
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
