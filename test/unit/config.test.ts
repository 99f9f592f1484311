import { execFileSync, spawn } from 'child_process';
import fs from 'fs';
import path from 'path';
import { closestVariable, ConfigError, loadConfig, settings, settingsTable, unknownVariables } from '../../services/core/platform/config';

const ROOT = path.resolve(__dirname, '../..');
const SECRET = 'a-secret-that-is-at-least-32-bytes-long';

/** The problems loadConfig reports for `env` (fails the test when it does not throw a ConfigError). */
function problems(env: NodeJS.ProcessEnv, service: 'gateway' | 'worker' = 'gateway'): string[] {
  try {
    loadConfig(env, service);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const err = e as ConfigError;
    expect(err.message).toBe(err.problems.join('\n'));
    return err.problems;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
}

describe('loadConfig defaults', () => {
  test('a gateway with only JWT_SECRET gets every documented default', () => {
    const cfg = loadConfig({ JWT_SECRET: SECRET });
    expect(cfg).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      metricsPort: 9091,
      redisUrl: undefined,
      redisCluster: false,
      keyPrefix: 'rtg',
      authMode: 'jwt',
      jwtSecret: SECRET,
      jwtPublicKey: undefined,
      jwtJwksUrl: undefined,
      jwtIssuer: undefined,
      jwtAudience: undefined,
      jwtRequireExp: true,
      logLevel: 'info',
      corsOrigins: ['*'],
      transports: ['polling', 'websocket'],
      maxHttpBufferSize: 65536,
      maxMessageBytes: 16384,
      rateLimitPerSecond: 50,
      rateLimitBurst: 100,
      connectRatePerSecond: 0,
      maxConnections: 0,
      outboundSoftBytes: 524288,
      outboundMaxBytes: 1048576,
      recoveryWindowMs: 120000,
      heartbeatIntervalMs: 5000,
      presenceGraceMs: 5000,
      apiKeys: [],
      inboxMaxLen: 1000,
    });
    expect(typeof cfg.podName).toBe('string');
    expect(cfg.podName.length).toBeGreaterThan(0);
    expect(cfg.workspacePattern.exec('/workspace-acme')?.[1]).toBe('acme');
    expect(cfg.workspacePattern.test('/admin')).toBe(false);
  });

  test('every setting has a value after loading (none is forgotten)', () => {
    const cfg = loadConfig({ JWT_SECRET: SECRET }) as Record<string, unknown>;
    expect(Object.keys(cfg).sort()).toEqual(Object.keys(settings).sort());
  });

  test('empty strings mean "unset" and take the default', () => {
    const cfg = loadConfig({ JWT_SECRET: SECRET, PORT: '', REDIS_URL: '', LOG_LEVEL: '' });
    expect(cfg.port).toBe(3000);
    expect(cfg.redisUrl).toBeUndefined();
    expect(cfg.logLevel).toBe('info');
  });

  test('valid values are parsed: integers, booleans, lists, URLs, regexes', () => {
    const cfg = loadConfig({
      JWT_SECRET: SECRET,
      PORT: '8080',
      REDIS_URL: 'rediss://user:pw@redis.example:6380/0',
      REDIS_CLUSTER: 'yes',
      JWT_REQUIRE_EXP: 'off',
      CORS_ORIGINS: 'https://a.example, https://b.example,,',
      TRANSPORTS: 'websocket',
      API_KEYS: 'key-0123456789abcdef,key-fedcba9876543210',
      WORKSPACE_NAMESPACE_PATTERN: '^/ws-([a-z]+)$',
    });
    expect(cfg.port).toBe(8080);
    expect(cfg.redisUrl).toBe('rediss://user:pw@redis.example:6380/0');
    expect(cfg.redisCluster).toBe(true);
    expect(cfg.jwtRequireExp).toBe(false);
    expect(cfg.corsOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(cfg.transports).toEqual(['websocket']);
    expect(cfg.apiKeys).toEqual(['key-0123456789abcdef', 'key-fedcba9876543210']);
    expect(cfg.workspacePattern.exec('/ws-team')?.[1]).toBe('team');
  });

  test('insecure mode needs no key', () => {
    expect(loadConfig({ AUTH_MODE: 'insecure' }).authMode).toBe('insecure');
  });

  test('the worker ignores the gateway auth settings but needs REDIS_URL', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }, 'worker').redisUrl).toBe('redis://127.0.0.1:6379');
  });
});

describe('loadConfig: every kind of bad variable gives one clear line', () => {
  const cases: Array<[string, NodeJS.ProcessEnv, RegExp]> = [
    ['not an integer', { PORT: 'eighty' }, /^PORT must be an integer, got "eighty"$/],
    ['a fractional integer', { MAX_CONNECTIONS: '1.5' }, /^MAX_CONNECTIONS must be an integer, got "1.5"$/],
    ['an integer above the range', { PORT: '70000' }, /^PORT must be between 0 and 65535, got 70000$/],
    ['an integer below the range', { MAX_HTTP_BUFFER_SIZE: '10' }, /^MAX_HTTP_BUFFER_SIZE must be between 1024 and \d+, got 10$/],
    ['a negative integer', { RATE_LIMIT_EVENTS_PER_SECOND: '-1' }, /^RATE_LIMIT_EVENTS_PER_SECOND must be between 0 and \d+, got -1$/],
    ['a boolean', { REDIS_CLUSTER: 'maybe' }, /^REDIS_CLUSTER must be true or false, got "maybe"$/],
    ['an enum', { AUTH_MODE: 'none' }, /^AUTH_MODE must be one of jwt, insecure, got "none"$/],
    ['a log level', { LOG_LEVEL: 'verbose' }, /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"$/],
    ['a malformed redis URL', { REDIS_URL: 'not a url' }, /^REDIS_URL is not a valid redis:\/\/ URL: "not a url"$/],
    [
      'a redis URL with the wrong scheme',
      { REDIS_URL: 'http://127.0.0.1:6379' },
      /^REDIS_URL must start with redis:\/\/ or rediss:\/\/, got "http:\/\/127.0.0.1:6379"$/,
    ],
    [
      'an invalid regular expression',
      { WORKSPACE_NAMESPACE_PATTERN: '^/ws-(($' },
      /^WORKSPACE_NAMESPACE_PATTERN is not a valid regular expression: /,
    ],
    [
      'an unanchored regular expression',
      { WORKSPACE_NAMESPACE_PATTERN: '/ws-(.+)' },
      /^WORKSPACE_NAMESPACE_PATTERN must be anchored with \^ and \$, got "\/ws-\(\.\+\)"$/,
    ],
    [
      'a pattern matching /admin',
      { WORKSPACE_NAMESPACE_PATTERN: '^/(.*)$' },
      /^WORKSPACE_NAMESPACE_PATTERN must not match "\/" or "\/admin"$/,
    ],
    [
      'a key prefix with bad characters',
      { REDIS_KEY_PREFIX: 'has space' },
      /^REDIS_KEY_PREFIX must be 1-32 chars of \[A-Za-z0-9_.:-\], got "has space"$/,
    ],
    ['a pod name with bad characters', { POD_NAME: 'pod/1' }, /^POD_NAME must be 1-253 chars of \[A-Za-z0-9_.-\], got "pod\/1"$/],
    [
      'an unknown transport',
      { TRANSPORTS: 'websocket,carrier-pigeon' },
      /^TRANSPORTS must list polling and\/or websocket, got "websocket,carrier-pigeon"$/,
    ],
    ['an empty transport list', { TRANSPORTS: ' , ' }, /^TRANSPORTS must not be empty$/],
  ];
  test.each(cases)('%s', (_what, env, line) => {
    const p = problems({ JWT_SECRET: SECRET, ...env });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(line);
    expect(p[0]).not.toContain('\n');
  });

  test('a password in a bad redis URL is not echoed', () => {
    const [line] = problems({ JWT_SECRET: SECRET, REDIS_URL: 'http://user:hunter2@127.0.0.1:6379' });
    expect(line).not.toContain('hunter2');
    expect(line).toContain('***@127.0.0.1');
  });

  test('several bad variables are reported together, one line each', () => {
    const p = problems({ JWT_SECRET: SECRET, PORT: 'x', REDIS_CLUSTER: 'maybe', AUTH_MODE: 'none', LOG_LEVEL: 'loud', INBOX_MAX_LEN: '0' });
    expect(p).toHaveLength(5);
    for (const name of ['PORT', 'REDIS_CLUSTER', 'AUTH_MODE', 'LOG_LEVEL', 'INBOX_MAX_LEN'])
      expect(p.filter((l) => l.startsWith(`${name} `))).toHaveLength(1);
  });
});

describe('loadConfig: cross checks', () => {
  test('jwt mode needs a key', () => {
    const p = problems({});
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/AUTH_MODE=jwt needs one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL/);
  });

  test('only one key source at a time', () => {
    expect(problems({ JWT_SECRET: SECRET, JWT_JWKS_URL: 'https://idp.example/jwks.json' })).toEqual([
      'set only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL',
    ]);
  });

  test('a short JWT_SECRET is refused (bytes, not characters)', () => {
    expect(problems({ JWT_SECRET: 'short' })).toEqual(['JWT_SECRET must be at least 32 bytes long']);
    expect(problems({ JWT_SECRET: 'x'.repeat(31) })).toEqual(['JWT_SECRET must be at least 32 bytes long']);
    expect(loadConfig({ JWT_SECRET: 'x'.repeat(32) }).jwtSecret).toHaveLength(32);
    // 16 two-byte characters are 32 bytes
    expect(loadConfig({ JWT_SECRET: 'é'.repeat(16) }).jwtSecret).toBe('é'.repeat(16));
  });

  test('JWT_JWKS_URL must be http(s)', () => {
    expect(problems({ JWT_JWKS_URL: 'file:///etc/jwks.json' })).toEqual([
      'JWT_JWKS_URL must be an http(s) URL, got "file:///etc/jwks.json"',
    ]);
  });

  test('the soft outbound mark must not exceed the hard one', () => {
    expect(problems({ JWT_SECRET: SECRET, OUTBOUND_BUFFER_SOFT_BYTES: '200000', OUTBOUND_BUFFER_MAX_BYTES: '100000' })).toEqual([
      'OUTBOUND_BUFFER_SOFT_BYTES must not exceed OUTBOUND_BUFFER_MAX_BYTES',
    ]);
    expect(
      loadConfig({ JWT_SECRET: SECRET, OUTBOUND_BUFFER_SOFT_BYTES: '100000', OUTBOUND_BUFFER_MAX_BYTES: '100000' }).outboundMaxBytes,
    ).toBe(100000);
  });

  test('HTTP timeouts: the headers timeout must not exceed the request timeout; defaults are seconds', () => {
    expect(problems({ JWT_SECRET: SECRET, HTTP_HEADERS_TIMEOUT_MS: '40000' })).toEqual([
      'HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS',
    ]);
    const cfg = loadConfig({ JWT_SECRET: SECRET });
    expect([cfg.httpHeadersTimeoutMs, cfg.httpRequestTimeoutMs, cfg.httpMaxConnections]).toEqual([10000, 30000, 100000]);
    expect(loadConfig({ JWT_SECRET: SECRET, HTTP_MAX_CONNECTIONS: '0' }).httpMaxConnections).toBe(0);
  });

  test('the worker needs REDIS_URL', () => {
    expect(problems({}, 'worker')).toEqual(['REDIS_URL is required by the worker']);
  });

  test('REDIS_CLUSTER needs REDIS_URL; METRICS_PORT must differ from PORT; API keys are long enough', () => {
    expect(problems({ JWT_SECRET: SECRET, REDIS_CLUSTER: 'true' })).toEqual(['REDIS_CLUSTER=true needs REDIS_URL']);
    expect(problems({ JWT_SECRET: SECRET, PORT: '9000', METRICS_PORT: '9000' })).toEqual(['METRICS_PORT must differ from PORT']);
    expect(loadConfig({ JWT_SECRET: SECRET, PORT: '0', METRICS_PORT: '0' }).port).toBe(0);
    expect(problems({ JWT_SECRET: SECRET, API_KEYS: 'short' })).toEqual(['every API_KEYS entry must be at least 16 characters long']);
  });

  test('DEV_LOGIN needs a secret to sign with (or insecure mode)', () => {
    const pem = '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----';
    expect(problems({ JWT_PUBLIC_KEY: pem, DEV_LOGIN: 'true' })).toEqual(['DEV_LOGIN=true needs JWT_SECRET (or AUTH_MODE=insecure)']);
    expect(loadConfig({ JWT_SECRET: SECRET, DEV_LOGIN: 'true' }).devLogin).toBe(true);
    expect(loadConfig({ AUTH_MODE: 'insecure', DEV_LOGIN: 'true' }).devLogin).toBe(true);
  });

  test('several cross-check problems are reported together', () => {
    const p = problems({ JWT_SECRET: 'short', OUTBOUND_BUFFER_SOFT_BYTES: '2000000', REDIS_CLUSTER: 'true' });
    expect(p).toEqual(
      expect.arrayContaining([
        'JWT_SECRET must be at least 32 bytes long',
        'OUTBOUND_BUFFER_SOFT_BYTES must not exceed OUTBOUND_BUFFER_MAX_BYTES',
        'REDIS_CLUSTER=true needs REDIS_URL',
      ]),
    );
    expect(p).toHaveLength(3);
  });
});

describe('unknownVariables', () => {
  test('reports look-alike typos of our variables and nothing else', () => {
    const env = {
      JWT_SECRET: SECRET, // known
      JWT_SECRETS: 'x', // typo
      RATE_LIMIT_EVENT_PER_SECOND: '5', // typo
      OUTBOUND_BUFFER_SOFT: '1', // typo
      PRESENCE_GRACE: '1',
      INBOX_MAXLEN: '1',
      WORKER_CONCURENCY: '1',
      RTG_FOO: '1',
      GATEWAY_PROT: '1',
      ADAPTER_STREAM_MAX_LEN: '1',
      REDIS_CLUSTR: 'true', // typo, found by its first word and its distance
      MAX_CONECTIONS: '100',
      POD_NAMEE: 'x',
      HEARTBEAT_INTERVAL: '1',
      LOGLEVEL: 'debug', // no shared word: found by its distance to LOG_LEVEL
      // injected by Kubernetes for Services in the namespace: never ours, never reported
      GATEWAY_PORT: 'tcp://10.0.0.1:3000',
      REDIS_PORT: 'tcp://10.0.0.2:6379',
      REDIS_PORT_6379_TCP_ADDR: '10.0.0.2',
      REALTIME_GATEWAY_SERVICE_HOST: '10.0.0.1',
      REDIS_SERVICE_PORT: '6379',
      KUBERNETES_SERVICE_HOST: '10.0.0.3',
      HOSTNAME: 'pod-1', // unrelated (4 edits from HOST)
      PORT: '3000', // known
      PATH: '/usr/bin', // unrelated
      NODE_ENV: 'production', // unrelated
      HOME: '/root',
      HTTP_PROXY: 'http://proxy:3128', // conventional, though HTTP_ starts some of ours
      HTTPS_PROXY: 'http://proxy:3128',
      NO_PROXY: 'localhost',
      HTTP_MAX_CONECTIONS: '10', // typo
    };
    expect(unknownVariables(env).sort()).toEqual(
      [
        'ADAPTER_STREAM_MAX_LEN',
        'GATEWAY_PROT',
        'HTTP_MAX_CONECTIONS',
        'REDIS_CLUSTR',
        'MAX_CONECTIONS',
        'POD_NAMEE',
        'HEARTBEAT_INTERVAL',
        'LOGLEVEL',
        'INBOX_MAXLEN',
        'JWT_SECRETS',
        'OUTBOUND_BUFFER_SOFT',
        'PRESENCE_GRACE',
        'RATE_LIMIT_EVENT_PER_SECOND',
        'RTG_FOO',
        'WORKER_CONCURENCY',
      ].sort(),
    );
  });

  test('a typo names the variable it most likely meant', () => {
    expect(closestVariable('REDIS_CLUSTR')).toBe('REDIS_CLUSTER');
    expect(closestVariable('MAX_CONECTIONS')).toBe('MAX_CONNECTIONS');
    expect(closestVariable('HOME')).toBeUndefined();
  });

  test('no known variable is ever reported', () => {
    const env = Object.fromEntries(Object.values(settings).map((s) => [s.env, '1']));
    expect(unknownVariables(env)).toEqual([]);
  });
});

describe('settingsTable', () => {
  test('covers every setting exactly once, with a default, services and a one-line doc', () => {
    const rows = settingsTable();
    expect(rows.map((r) => r.env).sort()).toEqual(
      Object.values(settings)
        .map((s) => s.env)
        .sort(),
    );
    expect(new Set(rows.map((r) => r.env)).size).toBe(rows.length);
    for (const r of rows) {
      expect(r.env).toMatch(/^[A-Z][A-Z0-9_]*$/);
      expect(r.def.length).toBeGreaterThan(0);
      expect(r.services).toMatch(/^(gateway|worker)(, (gateway|worker))?$/);
      expect(r.doc.length).toBeGreaterThan(5);
      expect(r.doc).not.toContain('\n');
    }
    const byEnv = Object.fromEntries(rows.map((r) => [r.env, r]));
    expect(byEnv.PORT.def).toBe('`3000`');
    expect(byEnv.REDIS_URL.def).toBe('(unset)');
    expect(byEnv.TRANSPORTS.def).toBe('`polling,websocket`');
    expect(byEnv.POD_NAME.def).toBe('hostname');
    expect(byEnv.WORKER_CONCURRENCY.services).toBe('worker');
    expect(byEnv.JWT_SECRET.services).toBe('gateway');
    expect(byEnv.REDIS_URL.services).toBe('gateway, worker');
  });
});

describe('the gateway process refuses a bad configuration', () => {
  const main = path.join(ROOT, 'dist/services/gateway/main.js');
  beforeAll(() => {
    if (!fs.existsSync(main)) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
  }, 120000);

  function run(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [main], {
        env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      const t = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error(`gateway did not exit: ${stdout}${stderr}`));
      }, 20000);
      p.once('exit', (code) => {
        clearTimeout(t);
        resolve({ code, stdout, stderr });
      });
    });
  }

  test('exits with code 2 and prints one line per bad variable', async () => {
    const r = await run({ JWT_SECRET: SECRET, PORT: 'eighty', LOG_LEVEL: 'loud', REDIS_URL: 'http://127.0.0.1:1' });
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines).toEqual(
      expect.arrayContaining([
        'gateway: invalid configuration: PORT must be an integer, got "eighty"',
        'gateway: invalid configuration: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
        'gateway: invalid configuration: REDIS_URL must start with redis:// or rediss://, got "http://127.0.0.1:1"',
      ]),
    );
    expect(r.stdout).toBe('');
  }, 30000);

  test('exits with code 2 when jwt mode has no key', async () => {
    const r = await run({});
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^gateway: invalid configuration: AUTH_MODE=jwt needs one of JWT_SECRET/),
    ]);
  }, 30000);
});
