import { spawn, spawnSync } from 'child_process';
import path from 'path';
import readline from 'readline';
import { useCluster } from './cluster';
import { ask, closeAll, connectClient, until } from './clients';
import { record, summary } from './results';

// Cross-language: a python-socketio client (test/e2e/python/client.py) and a socket.io-client
// (JS) client in one room through the balancer exchange room messages, direct messages and acks.
// The balancer is make up's default: round-robin per request without cookies, so python's
// long-polling requests land on any gateway and are forwarded to their session's.

jest.setTimeout(120000);

const PY = path.join(__dirname, 'python/client.py');
const SEND = 5;

interface PyLine {
  event: string;
  [k: string]: unknown;
}

describe('python-socketio and socket.io-client talk through the balancer (round-robin, no cookies)', () => {
  const cluster = useCluster({ name: 'python', gateways: 3, workers: 1, sticky: false });
  beforeAll(() => {
    const r = spawnSync('python3', ['-c', 'import socketio'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`python-socketio is missing: pip install "python-socketio[client]" (${r.stderr.trim()})`);
  });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test.each([
    ['polling, then websocket', 'polling,websocket'],
    ['long-polling only', 'polling'],
  ])('room messages, a direct message and acks both ways (python: %s)', async (label, transports) => {
    const c = cluster();
    const tag = `${Date.now().toString(36)}-${transports.length}`;
    const room = `py-${tag}`;
    const jsUser = `js-${tag}`;
    const pyUser = `py-${tag}`;
    const js = await connectClient(c, jsUser, { transports: ['websocket'] });
    expect(await ask(js.socket, 'join-room', room)).toMatchObject({ ok: true });
    const dms: Array<{ id: string; from: string; text: string }> = [];
    js.socket.on('direct-message', (m: { id: string; from: string; text: string }) => dms.push(m));

    const t0 = Date.now();
    const proc = spawn(
      'python3',
      [
        PY,
        '--url',
        c.baseUrl,
        '--token',
        await c.token(pyUser),
        '--room',
        room,
        '--peer',
        jsUser,
        '--send',
        String(SEND),
        '--expect',
        String(SEND),
        '--expect-direct',
        '1',
        '--transports',
        transports,
        '--timeout',
        '30',
      ],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const lines: PyLine[] = [];
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    readline.createInterface({ input: proc.stdout }).on('line', (l) => {
      try {
        lines.push(JSON.parse(l));
      } catch {
        lines.push({ event: 'unparsed', line: l });
      }
    });
    // 'close' (not 'exit'): stdout is read to the end first
    const exited = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
    try {
      await until(() => lines.some((l) => l.event === 'joined' || l.event === 'error'), 20000, `python to join (stderr: ${stderr})`);
      proc.stdin.write('go\n');
      const jsAcks: string[] = [];
      for (let i = 0; i < SEND; i++) {
        const a = await ask(js.socket, 'message', { roomId: room, text: `from js ${i}` });
        expect(a).toMatchObject({ ok: true });
        jsAcks.push(a.id as string);
      }
      const dmAck = await ask(js.socket, 'direct-message', { toUserId: pyUser, text: 'direct from js' });
      expect(dmAck).toMatchObject({ ok: true });
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 40000)))]);
      clearTimeout(timer);
      const ms = Date.now() - t0;

      const pyAcks = lines.filter((l) => l.event === 'ack' && l.kind === 'message').map((l) => l.ack as { ok: boolean; id: string });
      const pyDmAck = lines.find((l) => l.event === 'ack' && l.kind === 'direct-message')?.ack as { ok: boolean } | undefined;
      const pyGot = lines.filter((l) => l.event === 'message' && l.userId === jsUser);
      const jsGot = js.messages.filter((m) => m.userId === pyUser);
      await until(() => dms.length >= 1, 5000, 'the direct message from python').catch(() => undefined);
      record(__filename, `python: python-socketio ${label} + socket.io-client`, {
        pythonTransport: lines.find((l) => l.event === 'done' || l.event === 'error')?.transport,
        pythonAcksOk: pyAcks.filter((a) => a.ok).length,
        pythonReceivedFromJs: pyGot.length,
        jsReceivedFromPython: jsGot.length,
        directMessagesBothWays: `${dms.length}/${lines.filter((l) => l.event === 'direct-message').length}`,
        durationMs: ms,
      });

      expect(lines.filter((l) => l.event === 'unparsed')).toEqual([]);
      expect(lines.find((l) => l.event === 'error')).toBeUndefined();
      expect(code).toBe(0);
      expect(lines[0]).toMatchObject({ event: 'connected' });
      expect(lines.find((l) => l.event === 'joined')).toMatchObject({ ack: { ok: true, room } });
      expect(pyAcks).toHaveLength(SEND);
      expect(pyAcks.every((a) => a.ok && typeof a.id === 'string')).toBe(true);
      expect(pyDmAck).toMatchObject({ ok: true });
      // python got each JS message once, with the trailing recovery offset argument
      expect(pyGot.map((l) => l.id).sort()).toEqual([...jsAcks].sort());
      expect(pyGot.every((l) => l.offset === true)).toBe(true);
      // JS got each python message once, and the direct messages crossed
      expect(jsGot.map((m) => m.id).sort()).toEqual(pyAcks.map((a) => a.id).sort());
      expect(dms).toEqual([expect.objectContaining({ from: pyUser, text: 'direct from python' })]);
      expect(lines.filter((l) => l.event === 'direct-message')).toEqual([
        expect.objectContaining({ from: jsUser, text: 'direct from js' }),
      ]);
      expect(lines.find((l) => l.event === 'done')?.transport).toBe(transports === 'polling' ? 'polling' : 'websocket');
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      js.close();
    }
  });
});
