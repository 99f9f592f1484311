import type http from 'http';
import { loadConfig } from '../../services/core/platform/config';
import { parseAddress, PodDirectory } from '../../services/core/pods/directory';
import type { PodInfo } from '../../services/core/pods/registry';
import {
  advertisedAddress,
  answerHeaders,
  FORWARDED_HEADER,
  forwardHeaders,
  newPodTag,
  routeOf,
  sessionId,
  tagOf,
  upgradeHead,
} from '../../services/gateway/forwarding';

// The pure parts of forwarding (services/gateway/forwarding.ts) and the pod directory
// (services/core/pods/directory.ts): session ids, routing decisions, headers, addresses, the
// cache in front of the pod registry. test/integration/forwarding.test.ts runs the real thing.

describe('session ids', () => {
  test('name their pod: <8-character tag>.<20 random base64url characters>, unique', () => {
    const tag = newPodTag();
    expect(tag).toMatch(/^[A-Za-z0-9_-]{8}$/);
    const ids = Array.from({ length: 2000 }, () => sessionId(tag));
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{20}$/);
      expect(tagOf(id)).toBe(tag);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(Array.from({ length: 200 }, () => newPodTag())).size).toBe(200);
  });

  test.each([
    '',
    'garbage',
    'AAAAAAAA',
    'AAAAAAAA.',
    'AAAAAAAA.short',
    'AAAAAAA.BBBBBBBBBBBBBBBBBBBB',
    'AAAAAAAA.BBBBBBBBBBBBBBBBBBBBB',
    'AA/AAAAA.BBBBBBBBBBBBBBBBBBBB',
    'BBBBBBBBBBBBBBBBBBBB',
    'x'.repeat(500),
  ])('%j is not one of ours', (sid) => expect(tagOf(sid)).toBeUndefined());
});

describe('routeOf', () => {
  const own = 'OwnTag00';
  const other = 'OtherTag';
  const sid = (tag: string) => `${tag}.${'r'.repeat(20)}`;
  const url = (q: string) => `/socket.io/?EIO=4&transport=polling${q}`;
  test.each([
    ['a handshake (no sid)', url(''), {}, { to: 'local' }],
    ['an own session', url(`&sid=${sid(own)}`), {}, { to: 'local' }],
    ["another pod's session", url(`&sid=${sid(other)}`), {}, { to: 'owner', tag: other }],
    ['a sid that is no tag of ours', url('&sid=garbage'), {}, { to: 'owner', tag: undefined }],
    ['a forwarded request for another pod', url(`&sid=${sid(other)}`), { [FORWARDED_HEADER]: 'x' }, { to: 'loop' }],
    ['a forwarded request for this pod', url(`&sid=${sid(own)}`), { [FORWARDED_HEADER]: 'x' }, { to: 'local' }],
    ['several sids: the last one counts, as in engine.io', url(`&sid=${sid(other)}&sid=${sid(own)}`), {}, { to: 'local' }],
    ['an encoded sid', url(`&sid=${encodeURIComponent(sid(other))}`), {}, { to: 'owner', tag: other }],
    ['another path', `/api/v1/publish?sid=${sid(other)}`, {}, { to: 'local' }],
    ['no query at all', '/socket.io/', {}, { to: 'local' }],
  ])('%s', (_what, u, headers, want) => {
    expect(routeOf(u, headers as http.IncomingHttpHeaders, own, '/socket.io/')).toEqual(want);
  });
});

describe('addresses', () => {
  test.each([
    [{ host: '0.0.0.0' }, 'http://127.0.0.1:3000'],
    [{ host: '::' }, 'http://127.0.0.1:3000'],
    [{ host: '127.0.0.1' }, 'http://127.0.0.1:3000'],
    [{ host: '10.1.2.3' }, 'http://10.1.2.3:3000'],
    [{ host: '0.0.0.0', podIp: '10.244.1.7' }, 'http://10.244.1.7:3000'],
    [{ host: '::', podIp: 'fd00::17' }, 'http://[fd00::17]:3000'],
    [{ host: '0.0.0.0', podIp: '10.0.0.1', advertiseAddress: 'http://gw-1.internal:8000' }, 'http://gw-1.internal:8000'],
  ])('%j advertises %s', (cfg, want) => {
    expect(advertisedAddress({ advertiseAddress: undefined, podIp: undefined, ...cfg }, 3000)).toBe(want);
  });

  test('only http://host:port addresses are connect targets', () => {
    expect(parseAddress('p', 'http://10.0.0.1:3000')).toEqual({ pod: 'p', address: 'http://10.0.0.1:3000', host: '10.0.0.1', port: 3000 });
    expect(parseAddress('p', 'http://[fd00::1]:3000')).toMatchObject({ host: 'fd00::1', port: 3000 });
    expect(parseAddress('p', 'http://gw:80')).toMatchObject({ host: 'gw', port: 80 });
    for (const bad of [
      undefined,
      42,
      '',
      'nonsense',
      'https://10.0.0.1:3000',
      'file:///etc/passwd',
      'http://u:p@10.0.0.1:1',
      'http://10.0.0.1:1/x',
      'http://10.0.0.1:1?x',
      'gopher://x:70',
    ])
      expect({ bad, target: parseAddress('p', bad) }).toEqual({ bad, target: undefined });
  });
});

describe('headers of a forwarded request', () => {
  test('hop-by-hop headers and a client-sent mark are dropped; the mark names the forwarding pod', () => {
    const h = forwardHeaders(
      {
        host: 'rt.example.com',
        connection: 'keep-alive',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'content-type': 'text/plain',
        cookie: 'a=b',
        [FORWARDED_HEADER]: 'forged',
      },
      'OwnTag00',
    );
    expect(h).toEqual({ host: 'rt.example.com', 'content-type': 'text/plain', cookie: 'a=b', [FORWARDED_HEADER]: 'OwnTag00' });
    expect(answerHeaders({ connection: 'close', 'content-length': '2', 'set-cookie': ['x=1'] })).toEqual({
      'content-length': '2',
      'set-cookie': ['x=1'],
    });
  });

  test('a websocket upgrade keeps its Upgrade and Connection headers', () => {
    const req = {
      method: 'GET',
      url: '/socket.io/?EIO=4&transport=websocket&sid=x',
      rawHeaders: ['Host', 'h', 'Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Key', 'k', 'X-RTG-Forwarded', 'forged'],
    } as unknown as http.IncomingMessage;
    expect(upgradeHead(req, 'OwnTag00').toString()).toBe(
      'GET /socket.io/?EIO=4&transport=websocket&sid=x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n' +
        `${FORWARDED_HEADER}: OwnTag00\r\n\r\n`,
    );
  });
});

describe('PodDirectory', () => {
  const pod = (id: string, tag: string, port: number, extra: Partial<PodInfo> = {}): PodInfo => ({
    id,
    connections: 0,
    lastHeartbeat: 1000,
    tag,
    address: `http://127.0.0.1:${port}`,
    ...extra,
  });
  function directory(pods: () => PodInfo[] | Promise<PodInfo[]>, minIntervalMs = 30) {
    const calls = { n: 0 };
    const d = new PodDirectory(
      async () => {
        calls.n++;
        return pods();
      },
      { tag: 'SelfTag0', address: () => 'http://127.0.0.1:3000' },
      minIntervalMs,
    );
    return { d, calls };
  }

  test('finds live pods by tag; reaped pods, itself, its own address and bad addresses are not targets', async () => {
    const { d } = directory(() => [
      pod('a', 'TagA0000', 3001),
      pod('b', 'TagB0000', 3002, { reaped: true }),
      pod('self', 'SelfTag0', 3000),
      pod('old-self', 'OldSelf0', 3000),
      { ...pod('c', 'TagC0000', 3003), address: 'ftp://x' },
      { id: 'worker-ish', connections: 0, lastHeartbeat: 1 },
    ]);
    expect(await d.lookup('TagA0000')).toMatchObject({ pod: 'a', port: 3001 });
    for (const t of ['TagB0000', 'SelfTag0', 'OldSelf0', 'TagC0000', 'Nobody00']) expect(await d.lookup(t)).toBe('unknown');
    expect(d.size).toBe(1);
  });

  test('two entries with one tag: the newest heartbeat wins', async () => {
    const { d } = directory(() => [pod('x', 'Dup00000', 3001, { lastHeartbeat: 5 }), pod('y', 'Dup00000', 3002, { lastHeartbeat: 9 })]);
    expect(await d.lookup('Dup00000')).toMatchObject({ pod: 'y' });
  });

  test('a cache hit reads nothing; misses read the registry at most once per interval, however many arrive', async () => {
    const { d, calls } = directory(() => [pod('a', 'TagA0000', 3001)], 50);
    await d.refresh();
    expect(calls.n).toBe(1);
    expect(d.peek('TagA0000')).toBeDefined();
    await Promise.all(Array.from({ length: 100 }, () => d.lookup('TagA0000')));
    expect(calls.n).toBe(1);
    const t0 = Date.now();
    const misses = await Promise.all(Array.from({ length: 200 }, (_, i) => d.lookup(`Miss${String(i).padStart(4, '0')}`)));
    expect(misses.every((m) => m === 'unknown')).toBe(true);
    expect(calls.n).toBeLessThanOrEqual(3);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  test('a pod that registered after the last read is found by the next one', async () => {
    let pods = [pod('a', 'TagA0000', 3001)];
    const { d } = directory(() => pods, 20);
    await d.refresh();
    pods = [...pods, pod('new', 'TagNew00', 3009)];
    expect(await d.lookup('TagNew00')).toMatchObject({ pod: 'new', port: 3009 });
  });

  test('registry down: known pods are still served; an unknown tag is `unavailable`, not `unknown`', async () => {
    let down = false;
    const { d } = directory(() => {
      if (down) throw new Error('redis down');
      return [pod('a', 'TagA0000', 3001)];
    });
    expect(await d.refresh()).toBe(true);
    down = true;
    expect(await d.refresh()).toBe(false);
    expect(await d.lookup('TagA0000')).toMatchObject({ pod: 'a' });
    expect(await d.lookup('TagZ0000')).toBe('unavailable');
    expect(await d.confirm('TagA0000')).toBe(true);
  });

  test('confirm reads the registry anew: a pod that left is gone', async () => {
    let pods = [pod('a', 'TagA0000', 3001)];
    const { d } = directory(() => pods, 10);
    await d.refresh();
    pods = [];
    expect(d.peek('TagA0000')).toBeDefined();
    expect(await d.confirm('TagA0000')).toBe(false);
    expect(d.peek('TagA0000')).toBeUndefined();
  });
});

describe('the forwarding settings', () => {
  const base = { JWT_SECRET: 'x'.repeat(32) };
  test('defaults, and what the chart sets', () => {
    const cfg = loadConfig(base);
    expect(cfg).toMatchObject({
      podIp: undefined,
      advertiseAddress: undefined,
      forwardMaxConnections: 50000,
      forwardConnectTimeoutMs: 2000,
      forwardTimeoutMs: 60000,
    });
    expect(loadConfig({ ...base, POD_IP: '10.244.1.7' }).podIp).toBe('10.244.1.7');
    expect(loadConfig({ ...base, ADVERTISE_ADDRESS: 'http://gw-0.gw:3000/' }).advertiseAddress).toBe('http://gw-0.gw:3000');
  });

  test.each([
    [{ POD_IP: '10.0.0.1/24' }, 'POD_IP must be an IP address or a host name'],
    [{ ADVERTISE_ADDRESS: 'https://gw:3000' }, 'ADVERTISE_ADDRESS must be an http://host:port URL'],
    [{ ADVERTISE_ADDRESS: 'http://gw:3000/path' }, 'ADVERTISE_ADDRESS must be an http://host:port URL'],
    [{ ADVERTISE_ADDRESS: 'http://user@gw:3000' }, 'ADVERTISE_ADDRESS must be an http://host:port URL'],
    [{ FORWARD_MAX_CONNECTIONS: '-1' }, 'FORWARD_MAX_CONNECTIONS must be between'],
    [{ FORWARD_CONNECT_TIMEOUT_MS: '5000', FORWARD_TIMEOUT_MS: '1000' }, 'FORWARD_CONNECT_TIMEOUT_MS must not exceed FORWARD_TIMEOUT_MS'],
  ])('%j is refused', (env, message) => {
    expect(() => loadConfig({ ...base, ...env })).toThrow(message);
  });
});
