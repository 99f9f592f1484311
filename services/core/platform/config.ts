import os from 'os';

/** Raised when one or more environment variables are invalid; `problems` holds one line each. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(public readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

type Parser<T> = (raw: string, name: string) => T;

interface Setting<T> {
  /** Environment variable name. */
  env: string;
  /** Default when unset; `undefined` means "not set". */
  def: T;
  /** One-line documentation, rendered into the README table. */
  doc: string;
  /** Which services read it. */
  services: ReadonlyArray<'gateway' | 'worker'>;
  parse: Parser<T>;
  /** Shown instead of the default value in docs (for computed defaults). */
  defDoc?: string;
}

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> =>
  (raw, name) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Error(`${name} must be an integer, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };

const decimal =
  (min: number, max: number): Parser<number> =>
  (raw, name) => {
    if (!/^\d+(\.\d+)?$/.test(raw.trim())) throw new Error(`${name} must be a number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };

const cookieName: Parser<string | undefined> = (raw, name) => {
  if (raw === '') return undefined;
  // RFC 6265 cookie-name: a token (no separators, spaces or controls).
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/.test(raw))
    throw new Error(`${name} must be a cookie name (letters, digits, ._-), got "${raw}"`);
  return raw;
};

const bool: Parser<boolean> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new Error(`${name} must be true or false, got "${raw}"`);
};

const str: Parser<string> = (raw) => raw;
const optStr: Parser<string | undefined> = (raw) => (raw === '' ? undefined : raw);

const oneOf =
  <T extends string>(...values: T[]): Parser<T> =>
  (raw, name) => {
    if (!(values as string[]).includes(raw)) throw new Error(`${name} must be one of ${values.join(', ')}, got "${raw}"`);
    return raw as T;
  };

const list: Parser<string[]> = (raw) =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const redisUrl: Parser<string | undefined> = (raw, name) => {
  if (raw === '') return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`${name} is not a valid redis:// URL: "${redact(raw)}"`);
  }
  if (!['redis:', 'rediss:'].includes(u.protocol)) throw new Error(`${name} must start with redis:// or rediss://, got "${redact(raw)}"`);
  return raw;
};

const regex: Parser<RegExp> = (raw, name) => {
  let re: RegExp;
  try {
    re = new RegExp(raw);
  } catch (e) {
    throw new Error(`${name} is not a valid regular expression: ${(e as Error).message}`);
  }
  if (!raw.startsWith('^') || !raw.endsWith('$')) throw new Error(`${name} must be anchored with ^ and $, got "${raw}"`);
  if (re.test('/') || re.test('/admin')) throw new Error(`${name} must not match "/" or "/admin"`);
  return re;
};

function redact(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

const G = ['gateway'] as const;
const W = ['worker'] as const;
const GW = ['gateway', 'worker'] as const;

/** Every setting, with its default and a one-line doc. The README table and the Helm chart follow this list. */
export const settings = {
  port: {
    env: 'PORT',
    def: 3000,
    parse: int(0, 65535),
    services: GW,
    doc: 'HTTP port: Socket.IO (`/socket.io/`), `/healthz`, `/readyz`, the publish API and the demo page',
  } as Setting<number>,
  host: { env: 'HOST', def: '0.0.0.0', parse: str, services: GW, doc: 'Address the HTTP and metrics servers bind to' } as Setting<string>,
  metricsPort: {
    env: 'METRICS_PORT',
    def: 9091,
    parse: int(0, 65535),
    services: GW,
    doc: 'Port of `/metrics` (and health), kept off the public ingress',
  } as Setting<number>,
  httpHeadersTimeoutMs: {
    env: 'HTTP_HEADERS_TIMEOUT_MS',
    def: 10000,
    parse: int(100, 3600000),
    services: GW,
    doc: 'Time a connection has to deliver the headers of a request (a new connection too), on every HTTP port; a slower one is answered 408 and closed',
  } as Setting<number>,
  httpRequestTimeoutMs: {
    env: 'HTTP_REQUEST_TIMEOUT_MS',
    def: 30000,
    parse: int(100, 3600000),
    services: GW,
    doc: 'Time a request has to arrive whole, body included, on every HTTP port (waiting for the answer, like a long-polling GET, does not count); a slower one is answered 408 and closed',
  } as Setting<number>,
  httpMaxConnections: {
    env: 'HTTP_MAX_CONNECTIONS',
    def: 100000,
    parse: int(0),
    services: GW,
    doc: 'Open TCP connections on `PORT` (websockets, long-polling, API calls) beyond which new ones are closed at once (0 = no cap); keep it well above the sockets a pod should hold (`MAX_CONNECTIONS` refuses those politely)',
  } as Setting<number>,
  redisUrl: {
    env: 'REDIS_URL',
    def: undefined,
    parse: redisUrl,
    services: GW,
    doc: 'Redis URL. Unset: single node on the in-memory engine (gateway only). Set: clustered on Redis',
  } as Setting<string | undefined>,
  redisCluster: {
    env: 'REDIS_CLUSTER',
    def: false,
    parse: bool,
    services: GW,
    doc: 'Treat `REDIS_URL` as a seed node of a Redis Cluster',
  } as Setting<boolean>,
  keyPrefix: {
    env: 'REDIS_KEY_PREFIX',
    def: 'rtg',
    parse: (raw, name) => {
      if (!/^[A-Za-z0-9_.:-]{1,32}$/.test(raw)) throw new Error(`${name} must be 1-32 chars of [A-Za-z0-9_.:-], got "${raw}"`);
      return raw;
    },
    services: GW,
    doc: 'Prefix of every Redis key this service writes',
  } as Setting<string>,
  authMode: {
    env: 'AUTH_MODE',
    def: 'jwt',
    parse: oneOf('jwt', 'insecure'),
    services: G,
    doc: '`jwt` verifies `auth.token`; `insecure` accepts `auth.userId` unsigned (development only, logs a warning)',
  } as Setting<'jwt' | 'insecure'>,
  jwtSecret: { env: 'JWT_SECRET', def: undefined, parse: optStr, services: G, doc: 'HS256 shared secret (at least 32 bytes)' } as Setting<
    string | undefined
  >,
  jwtPublicKey: {
    env: 'JWT_PUBLIC_KEY',
    def: undefined,
    parse: optStr,
    services: G,
    doc: 'PEM public key (SPKI) for RS256/ES256 tokens',
  } as Setting<string | undefined>,
  jwtJwksUrl: {
    env: 'JWT_JWKS_URL',
    def: undefined,
    parse: optStr,
    services: G,
    doc: 'JWKS URL for RS256/ES256 tokens (keys cached and refreshed on unknown `kid`)',
  } as Setting<string | undefined>,
  jwtIssuer: { env: 'JWT_ISSUER', def: undefined, parse: optStr, services: G, doc: 'Required `iss` claim, when set' } as Setting<
    string | undefined
  >,
  jwtAudience: { env: 'JWT_AUDIENCE', def: undefined, parse: optStr, services: G, doc: 'Required `aud` claim, when set' } as Setting<
    string | undefined
  >,
  jwtRequireExp: { env: 'JWT_REQUIRE_EXP', def: true, parse: bool, services: G, doc: 'Refuse tokens without `exp`' } as Setting<boolean>,
  podName: {
    env: 'POD_NAME',
    def: os.hostname(),
    defDoc: 'hostname',
    parse: (raw, name) => {
      if (!/^[A-Za-z0-9_.-]{1,253}$/.test(raw)) throw new Error(`${name} must be 1-253 chars of [A-Za-z0-9_.-], got "${raw}"`);
      return raw;
    },
    services: GW,
    doc: 'Identity of this process in heartbeats, presence and logs',
  } as Setting<string>,
  podIp: {
    env: 'POD_IP',
    def: undefined,
    defDoc: '`HOST` when it is a concrete address, else `127.0.0.1`',
    parse: (raw, name) => {
      if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(raw)) throw new Error(`${name} must be an IP address or a host name, got "${raw}"`);
      return raw;
    },
    services: G,
    doc: 'Address the other gateways reach this pod at, advertised in its heartbeat as `http://<POD_IP>:<PORT>` (the chart sets the pod IP from the downward API)',
  } as Setting<string | undefined>,
  advertiseAddress: {
    env: 'ADVERTISE_ADDRESS',
    def: undefined,
    defDoc: '`http://<POD_IP>:<PORT>`',
    parse: (raw, name) => {
      if (!/^http:\/\/[^/?#@\s]+$/.test(raw.replace(/\/$/, '')) || !URL.canParse(raw))
        throw new Error(`${name} must be an http://host:port URL without a path, got "${raw}"`);
      return raw.replace(/\/$/, '');
    },
    services: G,
    doc: "URL other gateways forward this pod's Engine.IO requests to, when it is not `http://<POD_IP>:<PORT>` (a port mapping, a sidecar)",
  } as Setting<string | undefined>,
  forwardMaxConnections: {
    env: 'FORWARD_MAX_CONNECTIONS',
    def: 50000,
    parse: int(0),
    services: G,
    doc: 'Requests and websocket tunnels this pod forwards at once to the pods that hold their Engine.IO sessions (a websocket whose upgrade came through this pod counts for its lifetime); beyond it answers 503 (0 = never forward: only sticky sessions work)',
  } as Setting<number>,
  forwardConnectTimeoutMs: {
    env: 'FORWARD_CONNECT_TIMEOUT_MS',
    def: 2000,
    parse: int(50, 60000),
    services: G,
    doc: 'Time to reach the owning pod of a forwarded request; beyond it answers 503 (the client reconnects and recovers its session)',
  } as Setting<number>,
  forwardTimeoutMs: {
    env: 'FORWARD_TIMEOUT_MS',
    def: 60000,
    parse: int(100, 3600000),
    services: G,
    doc: 'Time a forwarded polling request may take until its answer is complete (a long-polling GET waits up to the ping interval, 25 s), or a forwarded websocket upgrade until the owner answers; beyond it answers 503 or cuts',
  } as Setting<number>,
  logLevel: {
    env: 'LOG_LEVEL',
    def: 'info',
    parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
    services: GW,
    doc: 'pino log level',
  } as Setting<string>,
  workspacePattern: {
    env: 'WORKSPACE_NAMESPACE_PATTERN',
    def: /^\/workspace-([A-Za-z0-9_-]{1,64})$/,
    defDoc: '`^/workspace-([A-Za-z0-9_-]{1,64})$`',
    parse: regex,
    services: GW,
    doc: 'Dynamic workspace namespaces; the first capture group is the id checked against the `workspaces` claim',
  } as Setting<RegExp>,
  corsOrigins: {
    env: 'CORS_ORIGINS',
    def: ['*'],
    defDoc: '`*`',
    parse: list,
    services: G,
    doc: 'Allowed browser origins, comma-separated (`*` = any)',
  } as Setting<string[]>,
  transports: {
    env: 'TRANSPORTS',
    def: ['polling', 'websocket'],
    defDoc: '`polling,websocket`',
    parse: (raw, name) => {
      const l = list(raw, name);
      for (const t of l)
        if (!['polling', 'websocket'].includes(t)) throw new Error(`${name} must list polling and/or websocket, got "${raw}"`);
      if (!l.length) throw new Error(`${name} must not be empty`);
      return l;
    },
    services: G,
    doc: 'Enabled Engine.IO transports',
  } as Setting<string[]>,
  maxHttpBufferSize: {
    env: 'MAX_HTTP_BUFFER_SIZE',
    def: 65536,
    parse: int(1024, 100 * 1024 * 1024),
    services: G,
    doc: 'Largest accepted Engine.IO message in bytes; a bigger one closes that connection',
  } as Setting<number>,
  maxMessageBytes: {
    env: 'MAX_MESSAGE_BYTES',
    def: 16384,
    parse: int(64, 100 * 1024 * 1024),
    services: GW,
    doc: 'Largest `text` + `data` of one message/direct message/publish (JSON bytes); larger answers `too_large`',
  } as Setting<number>,
  rateLimitPerSecond: {
    env: 'RATE_LIMIT_EVENTS_PER_SECOND',
    def: 50,
    parse: int(0),
    services: G,
    doc: 'Per-socket token bucket refill rate for client events (0 = no limit)',
  } as Setting<number>,
  rateLimitBurst: { env: 'RATE_LIMIT_BURST', def: 100, parse: int(1), services: G, doc: 'Per-socket token bucket size' } as Setting<number>,
  connectRatePerSecond: {
    env: 'CONNECT_RATE_LIMIT_PER_SECOND',
    def: 0,
    parse: int(0),
    services: G,
    doc: 'Per-client-address handshake rate (0 = no limit); excess answers `rate_limited`',
  } as Setting<number>,
  trustProxyHops: {
    env: 'TRUST_PROXY_HOPS',
    def: 0,
    parse: int(0, 10),
    services: G,
    doc: 'Proxies in front of the gateway that append to `X-Forwarded-For` (the client address for the handshake limit is taken that many entries from the right; 0 = the TCP peer)',
  } as Setting<number>,
  maxConnections: {
    env: 'MAX_CONNECTIONS',
    def: 0,
    parse: int(0),
    services: G,
    doc: 'Connections per pod before new ones are refused with `overloaded` (0 = no limit)',
  } as Setting<number>,
  maxRoomsPerSocket: {
    env: 'MAX_ROOMS_PER_SOCKET',
    def: 128,
    parse: int(1, 100000),
    services: G,
    doc: 'Rooms one socket may be in; one more `join-room` answers `limit_exceeded`',
  } as Setting<number>,
  maxPresenceSubscriptions: {
    env: 'MAX_PRESENCE_SUBSCRIPTIONS',
    def: 1000,
    parse: int(1, 1000000),
    services: G,
    doc: 'User ids one socket may be subscribed to (`presence:subscribe`); beyond it answers `limit_exceeded`',
  } as Setting<number>,
  maxRoomIds: {
    env: 'MAX_ROOM_IDS',
    def: 16,
    parse: int(1, 1000),
    services: G,
    doc: '`roomIds` of one `message`; more answers `limit_exceeded`',
  } as Setting<number>,
  writeBudgetBytesPerSecond: {
    env: 'SOCKET_WRITE_BYTES_PER_SECOND',
    def: 65536,
    parse: int(0),
    services: G,
    doc: 'Bytes per second one socket may make the cluster write (a message to 16 rooms counts 16 times, a direct message once); beyond it answers `rate_limited` (0 = no budget)',
  } as Setting<number>,
  writeBurstBytes: {
    env: 'SOCKET_WRITE_BURST_BYTES',
    def: 262144,
    parse: int(1024),
    services: G,
    doc: 'The budget a socket may spend at once (its bucket size)',
  } as Setting<number>,
  inboxMaxBytes: {
    env: 'INBOX_MAX_BYTES',
    def: 1048576,
    parse: int(1024),
    services: GW,
    doc: 'Bytes kept per user inbox (oldest trimmed), next to INBOX_MAX_LEN',
  } as Setting<number>,
  outboundSoftBytes: {
    env: 'OUTBOUND_BUFFER_SOFT_BYTES',
    def: 524288,
    parse: int(1024),
    services: G,
    doc: 'Per-socket outbound buffer above which `volatile` messages to it are dropped',
  } as Setting<number>,
  outboundMaxBytes: {
    env: 'OUTBOUND_BUFFER_MAX_BYTES',
    def: 1048576,
    parse: int(1024),
    services: G,
    doc: 'Per-socket outbound buffer above which the socket is cut as a slow consumer (it reconnects and recovers)',
  } as Setting<number>,
  recoveryWindowMs: {
    env: 'RECOVERY_WINDOW_MS',
    def: 120000,
    parse: int(0),
    services: GW,
    doc: 'Connection state recovery window',
  } as Setting<number>,
  adapterShards: {
    env: 'ADAPTER_SHARDS',
    def: 16,
    parse: int(1, 256),
    services: GW,
    doc: 'Shards room traffic is spread over (keys and channels by a hash of namespace and room); every gateway and worker must use the same number',
  } as Setting<number>,
  adapterRoomHistory: {
    env: 'ADAPTER_ROOM_HISTORY',
    def: 5000,
    parse: int(10),
    services: GW,
    doc: 'Broadcasts kept per room for recovery (approximate); a client that missed more than a room still holds gets a fresh session',
  } as Setting<number>,
  recoveryMaxRead: {
    env: 'RECOVERY_MAX_READ',
    def: 10000,
    parse: int(1),
    services: G,
    doc: 'Room history entries one session restore may read; beyond it the client gets a fresh session (`recovered === false`)',
  } as Setting<number>,
  recoveryMaxMissed: {
    env: 'RECOVERY_MAX_MISSED',
    def: 2000,
    parse: int(1),
    services: G,
    doc: 'Packets one session restore may replay; beyond it the client gets a fresh session',
  } as Setting<number>,
  heartbeatIntervalMs: {
    env: 'HEARTBEAT_INTERVAL_MS',
    def: 5000,
    parse: int(100),
    services: GW,
    doc: 'Pod heartbeat period; a pod silent for 3 periods is reaped',
  } as Setting<number>,
  presenceGraceMs: {
    env: 'PRESENCE_GRACE_MS',
    def: 5000,
    parse: int(0),
    services: GW,
    doc: 'Time without sockets before a user is declared offline, and before the room memberships of a dropped connection are given up (`user-left`)',
  } as Setting<number>,
  shutdownDelayMs: {
    env: 'SHUTDOWN_DELAY_MS',
    def: 3000,
    parse: int(0),
    services: GW,
    doc: 'After SIGTERM, time with `/readyz` failing before sockets are moved (lets the ingress notice)',
  } as Setting<number>,
  drainTimeoutMs: {
    env: 'DRAIN_TIMEOUT_MS',
    def: 10000,
    parse: int(0),
    services: GW,
    doc: 'Upper bound for finishing in-flight work after sockets are told to reconnect',
  } as Setting<number>,
  drainSpreadPercent: {
    env: 'DRAIN_SPREAD_PERCENT',
    def: 50,
    parse: int(0, 80),
    services: G,
    doc: 'Share of `DRAIN_TIMEOUT_MS` over which a draining gateway spreads the closes of its connections, in batches every 100 ms, so the other pods take the reconnects gradually (0 = all at once; at most 80, leaving the rest for the last clients to recover before their memberships are handed over)',
  } as Setting<number>,
  rebalanceEnabled: {
    env: 'REBALANCE_ENABLED',
    def: true,
    parse: bool,
    services: G,
    doc: "Rebalancing: a gateway holding more than its fair share of the cluster's connections (from the pods' heartbeats) moves the excess to the others, gradually, with recoverable closes (false = connections stay where they landed)",
  } as Setting<boolean>,
  rebalanceTolerancePercent: {
    env: 'REBALANCE_TOLERANCE_PERCENT',
    def: 20,
    parse: int(1, 1000),
    services: G,
    doc: 'How far (percent of the fair share) a pod may be above the fair share, or another pod below it, before the pods above it shed connections (down to the fair share)',
  } as Setting<number>,
  rebalanceRatePercent: {
    env: 'REBALANCE_RATE_PERCENT',
    def: 1,
    parse: decimal(0.01, 100),
    services: G,
    doc: 'Most connections a rebalancing pod closes per second, in percent of its connections (decimals allowed; at least one per second)',
  } as Setting<number>,
  rebalanceAffinityCookie: {
    env: 'REBALANCE_AFFINITY_COOKIE',
    def: undefined,
    parse: cookieName,
    services: G,
    doc: "Name of the balancer's affinity cookie, when it sets one (the chart sets it from `ingress.nginx.affinity.cookieName` / `httpRoute.sessionPersistence.sessionName`): a shedding pod answers a new Engine.IO handshake carrying it `503` with the cookie expired, at most once per connection it closed, so the client reconnects to another pod instead of straight back",
  } as Setting<string | undefined>,
  devLogin: {
    env: 'DEV_LOGIN',
    def: false,
    parse: bool,
    services: G,
    doc: 'Development only: `POST /dev/token {"userId"}` signs a 24 h token with JWT_SECRET so the demo page can log in by name (never enable in production)',
  } as Setting<boolean>,
  demoPage: { env: 'DEMO_PAGE', def: true, parse: bool, services: G, doc: 'Serve the demo page at `/`' } as Setting<boolean>,
  apiKeys: {
    env: 'API_KEYS',
    def: [],
    defDoc: '(none: publish API off)',
    parse: list,
    services: GW,
    doc: 'Comma-separated API keys accepted by `POST /api/v1/publish`',
  } as Setting<string[]>,
  inboxMaxLen: {
    env: 'INBOX_MAX_LEN',
    def: 1000,
    parse: int(1),
    services: GW,
    doc: 'Messages kept per user inbox (oldest trimmed)',
  } as Setting<number>,
  inboxMaxAgeMs: {
    env: 'INBOX_MAX_AGE_MS',
    def: 7 * 24 * 3600 * 1000,
    parse: int(1000),
    services: GW,
    doc: 'Age after which inbox messages are trimmed',
  } as Setting<number>,
  idempotencyWindowMs: {
    env: 'IDEMPOTENCY_WINDOW_MS',
    def: 24 * 3600 * 1000,
    parse: int(1000),
    services: GW,
    doc: 'Publish `id`s repeated within this window are accepted once',
  } as Setting<number>,
  workerConcurrency: {
    env: 'WORKER_CONCURRENCY',
    def: 64,
    parse: int(1, 10000),
    services: W,
    doc: 'Outbox entries in flight per worker',
  } as Setting<number>,
  workerVisibilityTimeoutMs: {
    env: 'WORKER_VISIBILITY_TIMEOUT_MS',
    def: 30000,
    parse: int(1000),
    services: W,
    doc: 'Pending outbox entries idle this long are claimed by another worker',
  } as Setting<number>,
  workerMaxAttempts: {
    env: 'WORKER_MAX_ATTEMPTS',
    def: 5,
    parse: int(1, 1000),
    services: W,
    doc: 'Delivery attempts before an outbox entry moves to the dead-letter stream',
  } as Setting<number>,
};

type Settings = typeof settings;
export type Config = { [K in keyof Settings]: Settings[K]['def'] };

/** Reads and validates the configuration from `env`; throws ConfigError listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, service: 'gateway' | 'worker' = 'gateway'): Config {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(settings) as [string, Setting<unknown>][]) {
    const raw = env[s.env];
    if (raw === undefined || raw === '') {
      out[key] = s.def;
      continue;
    }
    try {
      out[key] = s.parse(raw, s.env);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const cfg = out as Config;
  if (!problems.length) problems.push(...crossCheck(cfg, service));
  if (problems.length) throw new ConfigError(problems);
  return cfg;
}

function crossCheck(cfg: Config, service: 'gateway' | 'worker'): string[] {
  const p: string[] = [];
  if (service === 'worker' && !cfg.redisUrl) p.push('REDIS_URL is required by the worker');
  if (service === 'gateway' && cfg.authMode === 'jwt') {
    const n = [cfg.jwtSecret, cfg.jwtPublicKey, cfg.jwtJwksUrl].filter(Boolean).length;
    if (n === 0)
      p.push('AUTH_MODE=jwt needs one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL (or set AUTH_MODE=insecure for development)');
    if (n > 1) p.push('set only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL');
    if (cfg.jwtSecret && Buffer.byteLength(cfg.jwtSecret) < 32) p.push('JWT_SECRET must be at least 32 bytes long');
    if (cfg.jwtJwksUrl && !/^https?:\/\//.test(cfg.jwtJwksUrl)) p.push(`JWT_JWKS_URL must be an http(s) URL, got "${cfg.jwtJwksUrl}"`);
  }
  if (service === 'gateway' && cfg.devLogin && !(cfg.authMode === 'insecure' || cfg.jwtSecret))
    p.push('DEV_LOGIN=true needs JWT_SECRET (or AUTH_MODE=insecure)');
  if (cfg.outboundSoftBytes > cfg.outboundMaxBytes) p.push('OUTBOUND_BUFFER_SOFT_BYTES must not exceed OUTBOUND_BUFFER_MAX_BYTES');
  if (cfg.redisCluster && !cfg.redisUrl) p.push('REDIS_CLUSTER=true needs REDIS_URL');
  if (cfg.metricsPort !== 0 && cfg.metricsPort === cfg.port) p.push('METRICS_PORT must differ from PORT');
  if (cfg.httpHeadersTimeoutMs > cfg.httpRequestTimeoutMs) p.push('HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS');
  if (cfg.forwardConnectTimeoutMs > cfg.forwardTimeoutMs) p.push('FORWARD_CONNECT_TIMEOUT_MS must not exceed FORWARD_TIMEOUT_MS');
  for (const k of cfg.apiKeys) if (k.length < 16) p.push('every API_KEYS entry must be at least 16 characters long');
  return p;
}

/** Names Kubernetes injects into every container (service links: `<SVC>_PORT`, `<SVC>_PORT_3000_TCP`, `<SVC>_SERVICE_HOST`, ...). */
const KUBERNETES_INJECTED = /_PORT(_|$)|_SERVICE_(HOST|PORT)/;
/** Conventional variables that share a first word with ours (`HTTP_`) but are never ours. */
const CONVENTIONAL = new Set(['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']);

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The known variable `name` most likely meant (a typo within 2 edits, 1 for short names), if any. */
export function closestVariable(name: string): string | undefined {
  let best: { env: string; d: number } | undefined;
  for (const s of Object.values(settings) as Setting<unknown>[]) {
    const d = editDistance(name, s.env);
    if (d <= (s.env.length < 8 ? 1 : 2) && (!best || d < best.d)) best = { env: s.env, d };
  }
  return best?.env;
}

/**
 * Variables that look like ours but are none of them (typos): reported at start-up, not ignored.
 * Derived from the settings table: a name that starts with the first word of one of our variables
 * (`REDIS_CLUSTR`, `MAX_CONECTIONS`), that is a near miss of one, or that carries the `RTG_` /
 * `GATEWAY_` prefix; what Kubernetes injects (`*_PORT`, `*_SERVICE_*`) is skipped.
 */
export function unknownVariables(env: NodeJS.ProcessEnv = process.env): string[] {
  const known = new Set(Object.values(settings).map((s) => s.env));
  const firstWords = new Set([...known].map((k) => k.split('_')[0]).concat('RTG', 'GATEWAY'));
  return Object.keys(env).filter((k) => {
    if (known.has(k) || CONVENTIONAL.has(k) || !/^[A-Z][A-Z0-9_]*$/.test(k) || KUBERNETES_INJECTED.test(k)) return false;
    return (k.includes('_') && firstWords.has(k.split('_')[0])) || closestVariable(k) !== undefined;
  });
}

/** Settings as rows for documentation: env, default, services, doc. */
export function settingsTable(): Array<{ env: string; def: string; services: string; doc: string }> {
  return Object.values(settings).map((s: Setting<unknown>) => ({
    env: s.env,
    def: s.defDoc ?? (s.def === undefined ? '(unset)' : Array.isArray(s.def) ? `\`${s.def.join(',')}\`` : `\`${String(s.def)}\``),
    services: s.services.join(', '),
    doc: s.doc,
  }));
}

/** Loads the config or exits with code 2, printing one line per bad variable. */
export function loadConfigOrExit(service: 'gateway' | 'worker', env: NodeJS.ProcessEnv = process.env): Config {
  try {
    const cfg = loadConfig(env, service);
    return cfg;
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const line of e.problems) process.stderr.write(`${service}: invalid configuration: ${line}\n`);
      process.exit(2);
    }
    throw e;
  }
}
